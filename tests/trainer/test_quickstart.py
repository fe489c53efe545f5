"""The quickstart manifest as shipped: its data loads, and the eval loss clearly drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubetune.cli.manifest import run_config
from kubetune_trainer.commands.local import format_summary
from kubetune_trainer.run import RunOptions, train

pytestmark = pytest.mark.trainer

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def test_quickstart_eval_loss_drops_within_a_few_dozen_steps(tmp_path: Path) -> None:
    config = run_config(QUICKSTART)
    train_uri = config.spec.dataset.train.uri if config.spec.dataset else ""
    assert train_uri == f"file://{QUICKSTART.parent / 'quickstart-data' / 'train.jsonl'}"
    # The shipped schedule, cut short; the output goes to the test's folder.
    spec = config.spec.model_copy(
        update={
            "training": config.spec.training.model_copy(
                update={"epochs": None, "maxSteps": 24, "evalIntervalSteps": 12}
            ),
            "output": config.spec.output.model_copy(update={"uri": f"file://{tmp_path / 'out'}"}),
        }
    )
    summary = train(
        config.model_copy(update={"spec": spec}),
        RunOptions(work_dir=tmp_path / "work", print_logs=False),
    )
    assert summary.outcome == "Succeeded", summary.message
    evals = [
        json.loads(line)["eval_loss"]
        for line in (tmp_path / "out" / "metrics.jsonl").open()
        if "eval_loss" in line
    ]
    assert len(evals) == 3  # before training, at step 12, at step 24
    assert evals[0] > evals[1] > evals[2]
    assert evals[2] < evals[0] - 1.5, evals
    text = format_summary(summary, resume_command="unused: the run was not stopped")
    assert "initialEvalLoss" in text and f"file://{tmp_path / 'out'}" in text
    assert "continue with" not in text
