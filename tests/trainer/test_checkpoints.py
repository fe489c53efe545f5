"""Checkpoints every ``intervalSteps``: uploaded as ``step-N`` with eval loss, pruned to
``keep``, reported in the termination summary and as metrics; resumes counted across runs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from kubetune_trainer.checkpoints import MARKER
from kubetune_trainer.run import RunOptions, train
from tests.trainer.helpers import free_port, make_config

pytestmark = pytest.mark.trainer


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("kubetune_trainer_")
    }


def run(
    tmp_path: Path, work: str, steps: int
) -> tuple[dict[str, float], list[dict[str, object]], int]:
    port = free_port()
    config = make_config(
        tmp_path,
        dataset={"validationSplit": "0.25"},
        training={"maxSteps": steps, "evalIntervalSteps": 1},
        checkpoints={"intervalSteps": 1, "keep": 2},
    )
    summary = train(
        config, RunOptions(work_dir=tmp_path / work, metrics_port=port, print_logs=False)
    )
    assert (summary.outcome, summary.step) == ("Succeeded", steps), summary.message
    return scrape(port), summary.checkpoints, summary.resumes


def test_checkpoints_are_uploaded_pruned_reported_and_counted(tmp_path: Path) -> None:
    metrics, checkpoints, resumes = run(tmp_path, "work1", 3)
    remote = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in remote.iterdir()) == ["step-2", "step-3"]
    assert [c["step"] for c in checkpoints] == [2, 3]
    assert [c["uri"] for c in checkpoints] == [f"file://{remote / f'step-{s}'}" for s in (2, 3)]
    assert all(isinstance(c["evalLoss"], float) for c in checkpoints)
    assert (
        json.loads((remote / "step-3" / MARKER).read_text())["evalLoss"]
        == checkpoints[1]["evalLoss"]
    )
    assert metrics["kubetune_trainer_checkpoints_total"] == 3
    assert metrics["kubetune_trainer_last_checkpoint_step"] == 3
    assert metrics["kubetune_trainer_checkpoint_upload_failures_total"] == 0
    assert (metrics["kubetune_trainer_resumes"], resumes) == (0, 0)

    metrics, checkpoints, resumes = run(tmp_path, "work2", 4)  # resumes from step 3
    assert [c["step"] for c in checkpoints] == [3, 4]
    assert metrics["kubetune_trainer_checkpoints_total"] == 1
    assert (metrics["kubetune_trainer_resumes"], resumes) == (1, 1)
    assert json.loads((remote / "step-4" / MARKER).read_text())["resumes"] == 1
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["resumes"] == 1
