"""The codeFunctions format over a source tree: the CLI's extraction logic, trained on."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from kubetune_contract.api.dataset import DatasetSpec
from kubetune_contract.data.code import extract
from kubetune_trainer.data import prepare
from kubetune_trainer.errors import InvalidDataError

pytestmark = pytest.mark.trainer

TREE = Path(__file__).parents[1] / "fixtures" / "code-tree"


def codes(uri: str) -> DatasetSpec:
    return DatasetSpec.model_validate({"train": {"uri": uri, "format": "codeFunctions"}})


def test_a_folder_trains_on_the_same_pairs_the_cli_extracts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder is read one level deep: put the package's module next to the broken file.
    shutil.copy(TREE / "broken.py", tmp_path / "broken.py")
    shutil.copy(TREE / "pkg" / "geometry.py", tmp_path / "geometry.py")
    (tmp_path / "README.txt").write_text("not python")
    with caplog.at_level(logging.WARNING):
        rows = list(prepare(codes(f"file://{tmp_path}"), "sft", 0).train)
    assert "broken.py" in caplog.text and "not valid Python" in caplog.text

    files = [(p.name, p.read_bytes()) for p in sorted(tmp_path.iterdir())]
    cli = extract(files)
    assert cli.skipped == ["broken.py: line 1: invalid syntax"]
    pairs = [(r["prompt"][0]["content"], r["completion"][0]["content"]) for r in rows]
    assert pairs == [(r["instruction"], r["response"]) for r in cli.rows]
    assert [p.split("`")[1] for p, _ in pairs] == [
        "def area(radius: float) -> float",
        "def length(self) -> float",
        "async def fetch(url: str, *, retries: int=3) -> bytes",
    ]


def test_a_source_without_documented_functions_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "plain.py"
    source.write_text("def f(x):\n    return x\n")
    with pytest.raises(InvalidDataError, match="no training rows"):
        prepare(codes(f"file://{source}"), "sft", 0)
