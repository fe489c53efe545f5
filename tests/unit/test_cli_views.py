"""The terminal views of get/watch and the curves PNG of plot (no cluster).

``kubetune plot`` prints through the trainer's ``plot`` command, a child process sharing
the terminal: its tests read the output with ``capfd``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetune.cli import main
from kubetune.cli.logs import pick_pod
from kubetune.cli.views import age, eta, final_message, job_row, progress_line, table
from kubetune_contract.curves import plot_curves, read_records

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _job(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "llama",
            "namespace": "ml",
            "creationTimestamp": "2026-11-25T11:00:00Z",
        },
        "spec": {"method": "sft"},
        "status": status,
    }


def test_age_and_eta_read_like_kubectl() -> None:
    assert age("2026-11-25T11:59:15Z", NOW) == "45s"
    assert age("2026-11-25T09:00:00Z", NOW) == "3h"
    assert age("2026-11-22T12:00:00Z", NOW) == "3d"
    assert age(None, NOW) == "-"
    assert (eta(3725), eta(245), eta(12), eta(None)) == ("1h02m", "4m", "12s", "-")


def test_job_row_and_table() -> None:
    running = _job(
        state="Running",
        progress={
            "step": 120,
            "totalSteps": 500,
            "percent": 24,
            "loss": 1.23456,
            "etaSeconds": 600,
        },
    )
    pending = _job()
    pending["metadata"]["name"] = "queued-one"
    rows = [job_row(running, NOW, True), job_row(pending, NOW, True)]
    assert rows[0] == [
        "ml",
        "llama",
        "Running",
        "sft",
        "120/500 (24%)",
        "1.235",
        "-",
        "10m",
        "-",
        "1h",
    ]
    assert rows[1][2:5] == ["Pending", "sft", "-"]
    text = table(
        ["NAMESPACE", "NAME", "STATE", "METHOD", "STEPS", "LOSS", "EVAL", "ETA", "EV", "AGE"],
        rows,
    )
    lines = text.splitlines()
    assert lines[0].startswith("NAMESPACE   NAME         STATE")
    assert lines[2].split() == [
        "ml",
        "queued-one",
        "Pending",
        "sft",
        "-",
        "-",
        "-",
        "-",
        "-",
        "1h",
    ]


def _evaluated(reason: str, status: str = "True", headline: str = "") -> dict[str, Any]:
    result = {"evaluation": {"prompts": 4, "headline": headline}} if headline else {}
    return _job(
        state="Succeeded",
        conditions=[{"type": "EvaluationPassed", "status": status, "reason": reason}],
        result={"adapterUri": "s3://b/a", **result},
    )


def test_evaluation_column_shows_the_headline_and_the_verdict() -> None:
    def column(job: dict[str, Any]) -> str:
        return job_row(job, NOW, False)[7]

    assert column(_evaluated("GatePassed", headline="exact match 0.21 → 0.64")) == (
        "exact match 0.21 → 0.64 (gate passed)"
    )
    assert column(_evaluated("GateFailed", "False", "exact match 0.21 → 0.22")) == (
        "exact match 0.21 → 0.22 (gate failed)"
    )
    assert column(_evaluated("Evaluated", headline="ROUGE-L 0.10 → 0.30")) == "ROUGE-L 0.10 → 0.30"
    assert column(_evaluated("EvaluationFailed", "False")) == "EvaluationFailed"
    assert column(_evaluated("Pending", "Unknown")) == "Pending"
    assert column(_job(state="Succeeded")) == "-"
    assert final_message(_evaluated("GateFailed", "False", "exact match 0.21 → 0.22")).splitlines()[
        -1
    ] == ("  evaluation: exact match 0.21 → 0.22 (gate failed)")


def test_progress_line_and_final_message() -> None:
    job = _job(state="Running", progress={"step": 50, "totalSteps": 100, "tokensPerSecond": 1234.5})
    line = progress_line(job, width=10)
    assert "[#####-----]" in line and "50/100 (50%)" in line and "1234.5 tok/s" in line
    done = _job(
        state="Failed",
        conditions=[
            {"type": "Failed", "status": "True", "reason": "InvalidInput", "message": "row 3"}
        ],
        result={"adapterUri": "s3://b/a"},
    )
    assert final_message(done).splitlines() == [
        "llama: Failed (InvalidInput: row 3)",
        "  adapterUri: s3://b/a",
    ]
    invalid = _job(
        state="Invalid",
        conditions=[
            {"type": "Accepted", "status": "False", "reason": "InvalidSpec", "message": "m"}
        ],
    )
    assert final_message(invalid) == "llama: Invalid (InvalidSpec: m)"


def test_logs_picks_the_newest_pod_of_the_rank() -> None:
    def pod(name: str, created: str, index: str | None) -> dict[str, Any]:
        annotations = {"batch.kubernetes.io/job-completion-index": index} if index else {}
        return {
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}
        }

    pods = [
        pod("a", "2026-01-01T00:00:00Z", "0"),
        pod("b", "2026-01-02T00:00:00Z", "0"),
        pod("c", "2026-01-03T00:00:00Z", "1"),
    ]
    assert pick_pod(pods, 0)["metadata"]["name"] == "b"
    assert pick_pod(pods, 1)["metadata"]["name"] == "c"
    assert pick_pod(pods, 2) is None
    assert (
        pick_pod([pod("single", "2026-01-01T00:00:00Z", None)], 0)["metadata"]["name"] == "single"
    )


def _metrics(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"step": s, "loss": 3.0 - s / 10, "learning_rate": 1e-3, "grad_norm": 1.0})
        for s in range(1, 11)
    ]
    lines.insert(3, "")
    lines.append('{"step": 10, "eval_loss": 2.2}')
    lines.append('{"step": 11, "loss": 1.')  # torn last line of a killed writer
    path = folder / "metrics.jsonl"
    path.write_text("\n".join(lines))
    return path


def test_read_records_skips_torn_lines(tmp_path: Path) -> None:
    records = read_records(_metrics(tmp_path).read_text().splitlines())
    assert len(records) == 11 and records[-1] == {"step": 10, "eval_loss": 2.2}


def test_plot_writes_a_png(tmp_path: Path, capfd: Any) -> None:
    _metrics(tmp_path / "out")
    output = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "out"), "-o", str(output)]) == 0
    assert output.read_bytes().startswith(PNG_MAGIC)
    assert f"wrote {output}" in capfd.readouterr().out
    assert (
        plot_curves(read_records(['{"step": 1, "loss": 2}']), tmp_path / "one.png").stat().st_size
        > 1000
    )


def test_plot_evaluation_draws_the_means_of_the_records(tmp_path: Path, capfd: Any) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    records = [
        {
            "index": i,
            "base": {"answer": "x", "scores": {"exactMatch": 0.0, "rougeL": 0.5}},
            "tuned": {"answer": "y", "scores": {"exactMatch": float(i % 2), "rougeL": 0.75}},
        }
        for i in range(4)
    ]
    (folder / "evaluation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    output = tmp_path / "evaluation.png"
    assert main(["plot", str(folder), "--evaluation", "-o", str(output)]) == 0
    assert output.read_bytes().startswith(PNG_MAGIC)
    (folder / "evaluation.jsonl").write_text("")
    assert main(["plot", str(folder), "--evaluation", "-o", str(output)]) == 1
    assert "nothing to draw" in capfd.readouterr().out


def test_plot_errors_are_one_line(tmp_path: Path, capfd: Any) -> None:
    assert main(["plot", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")]) == 1
    assert "cannot read metrics.jsonl" in capfd.readouterr().out
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text('{"step": 1, "epoch": 0.1}\n')
    assert main(["plot", str(tmp_path / "empty"), "-o", str(tmp_path / "y.png")]) == 1
    assert "no loss" in capfd.readouterr().out
