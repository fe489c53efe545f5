"""``kubetune validate``: OK lines, field-naming errors, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli import main
from tests.cases.manifests import INVALID_CASES, valid_manifest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump_all(content))
    return path


def test_examples_exist_for_every_method_and_adapter() -> None:
    specs = [yaml.safe_load(p.read_text())["spec"] for p in EXAMPLES]
    methods = {s["method"] for s in specs}
    adapters = {s.get("adapter", {}).get("type", "qlora") for s in specs}
    assert methods == {"sft", "dpo", "kto", "orpo", "reward", "grpo", "rloo", "multitask"}
    assert adapters == {"lora", "qlora", "full", "partial", "promptTuning"}
    assert any(s.get("adapter", {}).get("newTokens") for s in specs)
    assert any(s.get("resources", {}).get("nodes", 1) > 1 for s in specs)
    assert any(s.get("scheduling", {}).get("queueName") for s in specs)
    assert any(s.get("evaluation", {}).get("gate") for s in specs)
    assert all(p.read_text().startswith("#") for p in EXAMPLES), "each example needs a header"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path, capsys: Any) -> None:
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path}")


def test_multi_document_file_reports_each(tmp_path: Path, capsys: Any) -> None:
    bad = INVALID_CASES[0].manifest()
    path = _write(tmp_path, "jobs.yaml", [valid_manifest("one"), bad])
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"OK {path}#0 one" in captured.out
    assert f"{path}#1: spec.method: must be one of" in captured.err


def test_yaml_syntax_error_is_one_clear_line(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path, "broken.yaml", "spec: [unclosed\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: invalid YAML (line 2")
    assert "Traceback" not in err


def test_other_kinds_and_missing_files(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path, "cm.yaml", [{"apiVersion": "v1", "kind": "ConfigMap"}])
    assert main(["validate", str(path), str(tmp_path / "absent.yaml")]) == 1
    err = capsys.readouterr().err
    assert "not a FineTuneJob: apiVersion 'v1', kind 'ConfigMap'" in err
    assert "absent.yaml: cannot read" in err


def test_empty_file(tmp_path: Path, capsys: Any) -> None:
    path = _write(tmp_path, "empty.yaml", "")
    assert main(["validate", str(path)]) == 1
    assert "no YAML documents" in capsys.readouterr().err
