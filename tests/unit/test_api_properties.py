"""Property: any JSON document fed to the models validates or raises InvalidManifest."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from tests.cases.strategies import json_values, patched, spec_patches


def _accepts_or_refuses(document: Any) -> None:
    try:
        parse_finetunejob(document)
    except InvalidManifest as invalid:
        assert invalid.errors and all(str(e) for e in invalid.errors)


@given(json_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_random_documents(document: Any) -> None:
    _accepts_or_refuses(document)


@given(spec_patches)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_random_spec_patches(patch: dict[str, Any]) -> None:
    _accepts_or_refuses(patched(patch))
