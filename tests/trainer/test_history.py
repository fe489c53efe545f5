"""The metrics history across resumes, without training: the files, the whole-run
numbers, and when a checkpoint is the end of the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerState, TrainingArguments

from kubetune_contract.curves import RESUMES
from kubetune_trainer import history
from kubetune_trainer.resume import finished

#: Per-step training losses of a 6-step run.
STEP_LOSSES = [6.0, 5.0, 4.5, 4.0, 3.0, 2.5]


def mean(steps: range) -> float:
    return sum(STEP_LOSSES[s - 1] for s in steps) / len(steps)


def test_without_resumes_the_trainers_own_numbers_stand() -> None:
    records: list[dict[str, Any]] = [
        {"step": 0, "eval_loss": 7.0},
        {"step": 2, "loss": mean(range(1, 3)), "learning_rate": 1e-3},
        {"step": 4, "loss": mean(range(3, 5))},
        {"step": 4, "eval_loss": 4.2},
        {"step": 4, "train_loss": 4.9, "train_runtime": 3.0, "train_samples_per_second": 8.0},
    ]
    assert history.final_metrics(records, samples_per_step=4) == {
        "initialEvalLoss": 7.0,
        "loss": mean(range(3, 5)),
        "evalLoss": 4.2,
        "learningRate": 1e-3,
        "trainLoss": 4.9,
        "trainRuntimeSeconds": 3.0,
        "samplesPerSecond": 8.0,
    }


def test_after_resumes_training_numbers_cover_every_attempt() -> None:
    """Logged every 2 steps; checkpoints (logged too) at 3 and 4, resumed from each; the
    last attempt trains steps 5 and 6 and logs only its summary."""
    records: list[dict[str, Any]] = [
        {"step": 0, "eval_loss": 7.0},
        {"step": 2, "loss": mean(range(1, 3)), history.TRAINING_SECONDS: 1.0},
        {"step": 3, "loss": mean(range(3, 4)), history.TRAINING_SECONDS: 1.5},
        {"step": 3, RESUMES: 1},
        {"step": 4, "loss": mean(range(4, 5)), history.TRAINING_SECONDS: 2.5},
        {"step": 4, RESUMES: 2},
        {"step": 6, "train_loss": mean(range(5, 7)), "train_runtime": 1.5},
    ]
    metrics = history.final_metrics(records, samples_per_step=4)
    assert metrics["trainLoss"] == pytest.approx(mean(range(1, 7)), abs=1e-12)
    assert metrics["trainRuntimeSeconds"] == 2.5 + 1.5
    assert metrics["samplesPerSecond"] == 6 * 4 / 4.0
    assert (metrics["initialEvalLoss"], metrics["loss"]) == (7.0, mean(range(4, 5)))
    assert history.resume_steps(records) == [3, 4]


def test_resumed_at_the_last_step_the_history_is_the_whole_run() -> None:
    """The last attempt only published (no ``train()`` summary of its own)."""
    records: list[dict[str, Any]] = [
        {"step": 3, "loss": mean(range(1, 4)), history.TRAINING_SECONDS: 2.0},
        {"step": 6, "loss": mean(range(4, 7)), history.TRAINING_SECONDS: 4.0},
        {"step": 6, RESUMES: 1},
        {"step": 6, "eval_loss": 3.3},
    ]
    metrics = history.final_metrics(records, samples_per_step=2)
    assert metrics["trainLoss"] == pytest.approx(mean(range(1, 7)), abs=1e-12)
    assert (metrics["trainRuntimeSeconds"], metrics["samplesPerSecond"]) == (4.0, 3.0)


def test_begin_starts_fresh_or_from_the_checkpoints_copy(tmp_path: Path) -> None:
    path = tmp_path / "work" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text('{"step": 9, "loss": 1.0}\n')  # an earlier run in a reused work folder
    history.begin(path, None, 0, 0)
    assert history.read(path) == []

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    lines = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.0}]
    (checkpoint / history.CHECKPOINT_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    history.begin(path, checkpoint, 2, 1)
    records = history.read(path)
    assert records[:2] == lines[:2] and len(records) == 3
    assert (records[2]["step"], records[2][RESUMES]) == (2, 1)


def state(global_step: int, max_steps: int, epochs: int) -> TrainerState:
    return TrainerState(global_step=global_step, max_steps=max_steps, num_train_epochs=epochs)


@pytest.mark.parametrize(
    ("max_steps", "epochs", "saved", "expected"),
    [
        (5, 1, state(5, 5, 2), True),  # the last step
        (5, 1, state(4, 5, 2), False),
        (5, 1, state(6, 6, 2), True),  # maxSteps lowered: nothing to train, nothing undone
        (8, 1, state(5, 5, 2), False),  # maxSteps raised: train on
        (-1, 2, state(6, 6, 2), True),  # epochs: the saved end
        (-1, 2, state(3, 6, 2), False),
        (-1, 3, state(6, 6, 2), False),  # one epoch more: the Trainer trains it
    ],
    ids=["last", "before", "lowered", "raised", "epochs-last", "epochs-before", "epochs-more"],
)
def test_finished_checkpoints(
    tmp_path: Path, max_steps: int, epochs: int, saved: TrainerState, expected: bool
) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=max_steps, num_train_epochs=epochs, use_cpu=True
    )
    assert finished(args, saved) is expected
