"""The CRD is generated from the models, committed, structural, and described."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubetune.cli import main
from kubetune_contract.api.crd import crd, render_crd_yaml
from kubetune_contract.api.spec import IMMUTABLE_WHILE_RUNNING

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "crds" / "finetunejob.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_equals_generator_output(capsys: Any) -> None:
    assert main(["crd"]) == 0
    printed = capsys.readouterr().out
    assert printed == render_crd_yaml()
    assert COMMITTED.read_text() == printed, "crds/ is stale: run `make crd`"


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "anyOf", "oneOf", "allOf", "title", "const", "$defs", "propertyNames"}
    for path, node in _walk(_schema()):
        if node.get("x-kubernetes-int-or-string"):
            # The one union allowed: no type, anyOf an integer and a string option.
            assert "type" not in node, path
            assert [o["type"] for o in node["anyOf"]] == ["integer", "string"], path
            continue
        assert not forbidden & node.keys(), path
        assert "type" in node, f"{path} has no type"
        if node.get("additionalProperties") is False:
            raise AssertionError(f"{path}: additionalProperties false is not structural")


def test_every_spec_and_status_field_has_a_description() -> None:
    missing = [
        path
        for path, node in _walk(_schema())
        if path.count(".") >= 2 and not path.endswith(("[]", "{}")) and "description" not in node
    ]
    assert missing == []


def test_cel_rules_and_immutability_are_in_the_schema() -> None:
    spec = _schema()["properties"]["spec"]
    rules = spec["x-kubernetes-validations"]
    transition = [r for r in rules if "oldSelf" in r["rule"]]
    assert {r["fieldPath"].lstrip(".") for r in transition} == set(IMMUTABLE_WHILE_RUNNING)
    assert all(r["message"] and r["fieldPath"].startswith(".") for r in rules)
    adapter = spec["properties"]["adapter"]
    assert adapter["default"] == {"type": "qlora"}  # nested defaults spelled out
    assert any("qlora" in r["rule"] for r in rules)


def test_names_columns_and_subresources() -> None:
    spec = crd()["spec"]
    assert spec["names"]["shortNames"] == ["ftj"]
    assert spec["names"]["categories"] == ["kubetune"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["State", "Method", "Model", "Progress", "Loss", "Evaluation", "Age"]


def test_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml()) == crd()
