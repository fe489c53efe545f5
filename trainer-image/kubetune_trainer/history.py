"""The run's metrics history (``metrics.jsonl``), whole across resumes.

A resumed pod starts with an empty work folder, yet what it publishes (``metrics.jsonl``,
the curves, the final metrics, the manifest) must describe the run from step 1. So the
history travels with the checkpoints:

- every checkpoint folder gets a copy of ``metrics.jsonl`` as it was at the save
  (:class:`HistoryCallback`), uploaded with it; a resumed run starts its file from the
  copy in the checkpoint it resumes from (:func:`begin`), so records of an attempt that
  died after that checkpoint never appear;
- a checkpoint step is always a logging step, so the copy accounts for the loss of
  every step up to the checkpoint (the Trainer forgets the loss of steps it has not
  logged yet when the process ends); and with evaluation at epoch ends, a save at the
  step that ends an epoch (or training) waits for that evaluation, which the Trainer
  runs after the step's save: otherwise the checkpoint would lack it, and a run resumed
  from the checkpoint starts the next epoch and never makes it;
- each resume appends a record ``{"step": <step resumed at>, "time": ..., "resumes": n}``;
- :func:`final_metrics` reads the whole file: the last value of each metric, the
  evaluation before training (``initialEvalLoss``), and, after resumes, the whole run's
  mean training loss, training seconds and throughput (the Trainer's own ``train_*``
  numbers cover only its last ``train()`` call).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_contract.curves import RESUMES, read_records

#: The copy of the history in each checkpoint folder.
CHECKPOINT_FILE = "metrics.jsonl"
#: Cumulative seconds inside ``Trainer.train`` over all attempts (written by the telemetry).
TRAINING_SECONDS = "training_seconds"

#: Logged numbers reported in the summary and manifest, under their camelCase names.
SUMMARY_METRICS = {
    "loss": "loss",
    "eval_loss": "evalLoss",
    "epoch": "epoch",
    "train_loss": "trainLoss",
    "train_runtime": "trainRuntimeSeconds",
    "learning_rate": "learningRate",
    "grad_norm": "gradNorm",
    "train_samples_per_second": "samplesPerSecond",
    "eval_mean_token_accuracy": "evalMeanTokenAccuracy",
    "eval_accuracy": "evalAccuracy",
    "reward": "reward",
    "rewards/chosen": "rewardsChosen",
    "rewards/rejected": "rewardsRejected",
    "eval_perplexity": "evalPerplexity",
    "eval_f1": "evalF1",
}

Record = dict[str, Any]


def read(path: Path) -> list[Record]:
    """The records of a history file (none when it does not exist)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return read_records(lines)


def begin(path: Path, checkpoint: Path | None, step: int, resumes: int) -> None:
    """Start the run's history file: empty for a fresh run (a reused work folder may hold
    an earlier run's), else the resumed checkpoint's history up to ``step`` plus a resume
    record."""
    records: list[Record] = []
    if checkpoint is not None:
        records = [r for r in read(checkpoint / CHECKPOINT_FILE) if r["step"] <= step]
        records.append({"step": step, "time": time.time(), RESUMES: resumes})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def resume_steps(records: list[Record]) -> list[int]:
    """The step each resume of the run started at, in order."""
    return [int(r["step"]) for r in records if RESUMES in r]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def final_metrics(records: list[Record], samples_per_step: int) -> dict[str, float]:
    """The summary's metrics: :data:`SUMMARY_METRICS` (last values), ``initialEvalLoss``
    (the evaluation at step 0), and after a resume the whole run's ``trainLoss``,
    ``trainRuntimeSeconds`` and ``samplesPerSecond`` (:func:`_whole_run`).

    ``samples_per_step``: examples per optimizer step over all processes.
    """
    out: dict[str, float] = {}
    for record in records:
        for key, value in record.items():
            if key in SUMMARY_METRICS and _number(value):
                out[SUMMARY_METRICS[key]] = float(value)
    initial = [r["eval_loss"] for r in records if r["step"] == 0 and _number(r.get("eval_loss"))]
    if initial:
        out["initialEvalLoss"] = float(initial[0])
    if resume_steps(records):
        out.update(_whole_run(records, samples_per_step))
    return out


def _whole_run(records: list[Record], samples_per_step: int) -> dict[str, float]:
    """Training loss, seconds and throughput over every attempt of a resumed run.

    Before the last resume, each logged ``loss`` is the mean over the steps since the
    previous log (or resume), and the checkpoint resumed from was logged; after it, the
    last ``train()`` call's summary (``train_loss``, ``train_runtime``) covers its steps.
    """
    last = max(i for i, r in enumerate(records) if RESUMES in r)
    resumed_at = int(records[last]["step"])
    loss_sum, steps, since, seconds = 0.0, 0, 0, 0.0
    for record in records[:last]:
        if RESUMES in record:
            since = int(record["step"])
        elif _number(record.get("loss")):
            loss_sum += float(record["loss"]) * (int(record["step"]) - since)
            steps += int(record["step"]) - since
            since = int(record["step"])
        if _number(record.get(TRAINING_SECONDS)):
            seconds = float(record[TRAINING_SECONDS])
    ended = [r for r in records[last:] if _number(r.get("train_loss"))]
    if ended:
        segment = int(ended[-1]["step"]) - resumed_at
        loss_sum += float(ended[-1]["train_loss"]) * segment
        steps += segment
        seconds += float(ended[-1].get("train_runtime", 0.0))
    final_step = max(int(r["step"]) for r in records)
    out = {"trainLoss": loss_sum / steps} if steps else {}
    if seconds > 0:
        out["trainRuntimeSeconds"] = seconds
        out["samplesPerSecond"] = final_step * samples_per_step / seconds
    return out


class HistoryCallback(TrainerCallback):
    """Makes each checkpoint's history whole up to its step and copies it into the folder.

    Must come after the callbacks that request saves at a step end (preemption) and
    before the one that uploads checkpoints.
    """

    def __init__(self, path: Path, output_dir: Path) -> None:
        self.path = path
        self.output_dir = output_dir
        self._save_at_epoch_end = False

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if not control.should_save:
            return
        control.should_log = True
        epoch_ends = control.should_training_stop or float(state.epoch or 0.0).is_integer()
        if args.eval_strategy == "epoch" and epoch_ends:
            control.should_save = False
            self._save_at_epoch_end = True

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self._save_at_epoch_end:
            control.should_save = True
            self._save_at_epoch_end = False

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        folder = self.output_dir / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and self.path.exists():
            shutil.copyfile(self.path, folder / CHECKPOINT_FILE)
