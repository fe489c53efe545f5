"""The CRD is generated from the models, committed, structural, and described."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli import main
from kubetune_contract.api.crd import CRDS, crd, render_crd_yaml
from kubetune_contract.api.spec import IMMUTABLE_WHILE_RUNNING

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_committed_crd_equals_generator_output(kind: str, capsys: Any) -> None:
    assert main(["crd", "--kind", kind]) == 0
    printed = capsys.readouterr().out
    assert printed == render_crd_yaml(kind)
    committed = ROOT / "crds" / CRDS[kind][1]
    assert committed.read_text() == printed, f"{committed.name} is stale: run `make crd`"


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
    assert columns == [
        "State",
        "Method",
        "Model",
        "Progress",
        "Loss",
        "ETA",
        "Evaluation",
        "Age",
    ]


def test_every_printer_column_reads_a_field_of_the_schema() -> None:
    """A jsonPath to a field the schema lacks prints an empty column, never an error."""
    for column in crd()["spec"]["versions"][0]["additionalPrinterColumns"]:
        # A filter such as [?(@.type=="EvaluationPassed")] selects items of a list.
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"]).strip(".").split(".")
        if path[0] == "metadata":  # the API server's own schema
            continue
        node = _schema()
        for key in path:
            node = node["properties"][key.removesuffix("[]")]
            node = node["items"] if key.endswith("[]") else node
        assert node["type"] == column["type"], column


def test_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml()) == crd()
