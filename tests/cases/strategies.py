"""Hypothesis strategies for FineTuneJob documents, shared by the model property tests and
the API-server fuzz test: any JSON value, and spec patches over the fields that matter."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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

#: Valid manifests with a few top-level spec fields replaced by arbitrary JSON.
spec_patches = st.dictionaries(FIELD_NAMES, json_values, max_size=5)


def patched(patch: dict[str, Any], name: str = "demo") -> dict[str, Any]:
    """The valid manifest ``name`` with ``patch`` merged into its spec."""
    return merge(valid_manifest(name), {"spec": patch})
