"""dataset.quality in a training run: planted bad rows dropped, warned about, or fatal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetune_contract import exit_codes
from kubetune_trainer.run import RunOptions, execute
from tests.trainer.helpers import CHAT_ROWS, make_config

pytestmark = pytest.mark.trainer

GOOD = [{"text": f"Row {i}: the colour of the sky on day {i} is blue."} for i in range(8)]
#: Planted: an exact duplicate, a garbled row, a newline flood and a far too long row.
BAD = [
    dict(GOOD[2]),
    {"text": "\ufffd\ufffd\ufffd\ufffd\x00\x01\x02 ok"},
    {"text": "a\n\n\n\n\n\n\n\nb"},
    {"text": "long " * 200},
]
RULES = {
    "garbled": {},
    "length": {"min": 5, "max": 300},
    "newlineRatio": {"max": "0.3"},
    "duplicates": {"exact": True},
}


def run(tmp_path: Path, rows: list[dict[str, Any]], quality: dict[str, Any]) -> Any:
    config = make_config(tmp_path, rows=rows, dataset={"quality": quality})
    return execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )


def test_drop_rules_remove_exactly_the_planted_rows(tmp_path: Path) -> None:
    rows = [*GOOD[:3], BAD[0], *GOOD[3:6], BAD[1], BAD[2], *GOOD[6:], BAD[3]]
    summary = run(tmp_path, rows, RULES)
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["data"]["trainRows"] == len(GOOD)
    report = json.loads((tmp_path / "out" / "quality-report.json").read_text())
    counts = {r["rule"]: r["count"] for r in report["rules"]}
    assert counts == {"garbled": 1, "length": 1, "newlineRatio": 1, "exactDuplicate": 1}
    assert (report["rowsIn"], report["rowsKept"]) == (len(rows), len(GOOD))
    flagged = {r["rule"]: r["examples"][0]["row"] for r in report["rules"]}
    assert flagged == {"exactDuplicate": 3, "garbled": 7, "newlineRatio": 8, "length": 11}
    assert manifest["data"]["quality"] == report
    assert "data quality: 12 rows in, 8 kept" in summary.message


def test_warn_keeps_rows_and_fail_stops_with_invalid_data(tmp_path: Path) -> None:
    rows = [*GOOD, BAD[0]]
    warned = run(tmp_path / "warn", rows, {"duplicates": {"action": "warn"}})
    assert warned.exitCode == exit_codes.SUCCESS
    manifest = json.loads((tmp_path / "warn" / "out" / "manifest.json").read_text())
    assert manifest["data"]["trainRows"] == len(rows)

    failed = run(tmp_path / "fail", rows, {"duplicates": {"action": "fail"}})
    assert (failed.exitCode, failed.reason) == (exit_codes.INVALID_INPUT, "InvalidData")
    assert "exactDuplicate: 1 rows, e.g. row 8" in failed.message
    assert not (tmp_path / "fail" / "out" / "manifest.json").exists()


def test_rules_see_message_contents(tmp_path: Path) -> None:
    rows = [*CHAT_ROWS, CHAT_ROWS[0]]
    summary = run(tmp_path, rows, {"duplicates": {}})
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["data"]["trainRows"] == len(CHAT_ROWS)
