"""The migrations in CHANGELOG.md hold: each "Before" spec is refused, naming where its
fields went, and each "After" spec is accepted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from tests.cases.manifests import merge, valid_manifest

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
_SNIPPET = re.compile(r"^(Before|After):\n\n```yaml\n(.*?)```", re.MULTILINE | re.DOTALL)
#: What a spec fragment needs around it to be valid (reward is grpo/rloo only).
_CONTEXT = {"method": "rloo", "dataset": {"train": {"format": "promptCompletion"}}}


def _migrations() -> list[tuple[str, dict[str, Any]]]:
    found = [(kind, yaml.safe_load(text)) for kind, text in _SNIPPET.findall(CHANGELOG.read_text())]
    assert found, "no Before/After YAML in CHANGELOG.md"
    return found


def _manifest(fragment: dict[str, Any]) -> dict[str, Any]:
    context = _CONTEXT if "reward" in fragment else {}
    return merge(valid_manifest(), {"spec": merge(context, fragment)})


@pytest.mark.parametrize(("kind", "fragment"), _migrations())
def test_migration_snippet(kind: str, fragment: dict[str, Any]) -> None:
    if kind == "After":
        parse_finetunejob(_manifest(fragment))
        return
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(_manifest(fragment))
    unknown = [e for e in raised.value.errors if e.message.startswith("unknown field")]
    assert unknown and all("did you mean" in e.message for e in unknown), raised.value.errors
