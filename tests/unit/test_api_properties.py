"""Property: any JSON document fed to the models validates or raises InvalidManifest."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubetune.api import InvalidManifest, parse_finetunejob
from tests.cases.manifests import merge, valid_manifest

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

FIELD_NAMES = st.sampled_from(
    [
        "method",
        "model",
        "adapter",
        "dataset",
        "training",
        "resources",
        "output",
        "reward",
        "grpo",
        "scheduling",
        "env",
        "suspend",
        "checkpoints",
        "multitask",
        "uri",
        "type",
        "lora",
    ]
)


def _accepts_or_refuses(document: Any) -> None:
    try:
        parse_finetunejob(document)
    except InvalidManifest as invalid:
        assert invalid.errors and all(str(e) for e in invalid.errors)


@given(json_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_documents(document: Any) -> None:
    _accepts_or_refuses(document)


@given(st.dictionaries(FIELD_NAMES, json_values, max_size=5))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_random_spec_patches(patch: dict[str, Any]) -> None:
    _accepts_or_refuses(merge(valid_manifest(), {"spec": patch}))
