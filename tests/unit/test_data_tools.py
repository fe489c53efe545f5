"""Data quality rules and code-instruction extraction (pure), and their CLI (the trainer's
``data`` command in a child process, whose output ``capfd`` reads)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from kubetune.cli import main
from kubetune_contract.api.dataset import QualitySpec
from kubetune_contract.data.code import extract, functions_with_docstrings
from kubetune_contract.data.quality import DEFAULT_SPEC, check, near_duplicates, row_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CODE_TREE = FIXTURES / "code-tree"

CLEAN = [f"Question {i}: how do I configure feature number {i} of the product?" for i in range(40)]


def _rows_with_planted_problems() -> tuple[list[dict[str, Any]], dict[str, int]]:
    rows: list[dict[str, Any]] = [
        {"prompt": text, "completion": "See the manual."} for text in CLEAN
    ]
    planted = {
        "garbled": len(rows),
        "length": len(rows) + 1,
        "newlineRatio": len(rows) + 2,
        "exactDuplicate": len(rows) + 3,
        "nearDuplicate": len(rows) + 4,
    }
    rows.append({"prompt": "\x00\x01\x02\ufffd\ufffd\x03", "completion": "\x04"})
    rows.append({"prompt": "hi", "completion": "ok"})
    rows.append({"prompt": "a list:\n\n\n\n\n\n\n\n\n\nb\n\n\n\n", "completion": "\n\n\n\nc"})
    rows.append({"prompt": CLEAN[5].upper(), "completion": "See the manual!"})
    rows.append({"prompt": CLEAN[7] + " Thanks", "completion": "See the manual."})
    return rows, planted


SPEC = QualitySpec.model_validate(
    {
        "garbled": {},
        "length": {"min": 20},
        "newlineRatio": {"max": "0.3"},
        "duplicates": {"exact": True, "nearThreshold": "0.6"},
    }
)


def test_quality_rules_drop_exactly_the_planted_rows() -> None:
    rows, planted = _rows_with_planted_problems()
    report = check(rows, SPEC)
    found = {r.rule: r.rows for r in report.results}
    assert found == {rule: [index] for rule, index in planted.items()}
    assert report.kept == list(range(len(CLEAN)))
    assert report.to_dict()["rowsKept"] == len(CLEAN)
    assert report.results[0].examples[0]["row"] == planted["garbled"]


def test_warn_keeps_rows_and_fail_is_reported() -> None:
    rows, planted = _rows_with_planted_problems()
    warn = check(rows, QualitySpec.model_validate({"length": {"min": 20, "action": "warn"}}))
    assert len(warn.kept) == len(rows)
    assert warn.results[0].rows == [planted["garbled"], planted["length"]]
    fail = check(rows, QualitySpec.model_validate({"garbled": {"action": "fail"}}))
    assert [r.rule for r in fail.failed] == ["garbled"]
    assert "garbled: 1 (fail)" in fail.summary()


def test_near_duplicates_respect_the_threshold() -> None:
    base = "the operator schedules training pods on gpu nodes and reports progress in status"
    texts = [base, base.replace("reports", "shows"), "something entirely different " * 3]
    assert near_duplicates(texts, 0.4) == [1]  # one word of 13 changed: Jaccard 0.57
    assert near_duplicates(texts, 0.8) == []


def test_row_text_flattens_messages() -> None:
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert row_text(row) == "user\nhi\nassistant\nyo"
    assert check([row], DEFAULT_SPEC).kept == [0]


def test_functions_with_docstrings() -> None:
    functions = functions_with_docstrings((CODE_TREE / "pkg" / "geometry.py").read_text())
    assert [f.name for f in functions] == ["area", "length", "fetch"]
    assert functions[0].signature == "def area(radius: float) -> float"
    assert functions[2].signature == "async def fetch(url: str, *, retries: int=3) -> bytes"
    assert functions[1].source.startswith("def length(self) -> float:")


def _tree_files() -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(CODE_TREE.rglob("*")) if p.is_file()]


def test_extract_reports_unparsable_files_and_opens_archives() -> None:
    result = extract(_tree_files())
    assert result.files == 2 and len(result.rows) == 3
    assert len(result.skipped) == 1 and "broken.py: line 1" in result.skipped[0]
    zipped, tarred = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("src/geometry.py", (CODE_TREE / "pkg" / "geometry.py").read_text())
    with tarfile.open(fileobj=tarred, mode="w:gz") as archive:
        archive.add(CODE_TREE / "pkg" / "geometry.py", arcname="src/geometry.py")
    for name, data in (("code.zip", zipped.getvalue()), ("code.tar.gz", tarred.getvalue())):
        rows = extract([(name, data)]).rows
        assert rows[0]["instruction"].splitlines()[0] == (
            "Write a Python function `def area(radius: float) -> float`."
        )


def test_cli_code_instructions(tmp_path: Path, capfd: Any) -> None:
    output = tmp_path / "code.jsonl"
    assert main(["data", "code-instructions", str(CODE_TREE), "-o", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 3 and set(rows[0]) == {"instruction", "response"}
    err = capfd.readouterr().err
    assert "skipped" in err and "3 functions from 2 files (1 skipped)" in err


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_check(tmp_path: Path, capfd: Any, as_json: bool) -> None:
    rows, _ = _rows_with_planted_problems()
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["data", "check", str(data), "--min-length", "20", "--near-duplicates", "0.6"]
    args += ["--max-newline-ratio", "0.3"]
    assert main(args + (["--json"] if as_json else [])) == 0
    out = capfd.readouterr().out
    if as_json:
        assert json.loads(out)["rowsKept"] == len(CLEAN)
    else:
        assert f"{len(rows)} rows, {len(CLEAN)} kept" in out and "nearDuplicate" in out
    assert main(["data", "check", str(data), "--min-length", "20", "--action", "fail"]) == 1
