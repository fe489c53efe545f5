"""Trainer telemetry: Prometheus gauges and ``metrics.jsonl``.

Records are written on the main process only (``state.is_world_process_zero``), so a
multi-GPU job writes one metrics file. Records logged during training carry
``training_seconds``, the time spent in ``Trainer.train`` over all attempts of the run
(counting on from the last value in the file, which a resume restores; see
:mod:`.history`). Checkpoint upload is in :mod:`.uploads`, signal handling in
:mod:`.preemption`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_trainer.history import TRAINING_SECONDS, read
from kubetune_trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)

#: Trainer log keys -> our gauge names (anything else is kept in metrics.jsonl only).
GAUGES = {
    "loss": "loss",
    "eval_loss": "eval_loss",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


class TelemetryCallback(TrainerCallback):
    """Feeds the gauges and appends every log record to ``metrics.jsonl``."""

    def __init__(self, metrics: TrainerMetrics, jsonl: Path, samples_per_step: int) -> None:
        self.metrics = metrics
        self.jsonl = jsonl
        self.samples_per_step = samples_per_step
        self.last: dict[str, float] = {}
        # (time, step, tokens seen) at the previous log; tokens unknown until the first log,
        # since a resumed run's token counter does not start at zero.
        self._mark: tuple[float, int, float | None] | None = None
        # (time training began in this process, training seconds of earlier attempts)
        self._began: tuple[float, float] | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self.metrics.set("total_steps", state.max_steps)
        self.metrics.set("step", state.global_step)
        self._mark = (time.monotonic(), state.global_step, None)
        before = [r[TRAINING_SECONDS] for r in read(self.jsonl) if TRAINING_SECONDS in r]
        self._began = (self._mark[0], float(before[-1]) if before else 0.0)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self.metrics.set("step", state.global_step)
        self.metrics.set("epoch", state.epoch or 0.0)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._began = None  # what is logged after training (a final evaluation) is not training

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        numbers = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
        now = time.monotonic()
        if self._mark is not None and state.global_step > self._mark[1]:
            elapsed = max(now - self._mark[0], 1e-9)
            steps = state.global_step - self._mark[1]
            numbers["samples_per_second"] = steps * self.samples_per_step / elapsed
            # TRL's trainers log the cumulative token count as ``num_tokens``.
            tokens, before = numbers.get("num_tokens"), self._mark[2]
            if tokens is not None and before is not None and tokens > before:
                numbers["tokens_per_second"] = (tokens - before) / elapsed
            self._mark = (now, state.global_step, tokens if tokens is not None else before)
        for key, gauge in GAUGES.items():
            if key in numbers:
                self.metrics.set(gauge, numbers[key])
        for key in ("samples_per_second", "tokens_per_second"):
            if key in numbers:
                self.metrics.set(key, numbers[key])
        self.metrics.set("step", state.global_step)
        self.metrics.set("epoch", state.epoch or 0.0)
        self._gpu_memory()
        if self._began is not None:
            numbers[TRAINING_SECONDS] = self._began[1] + now - self._began[0]
        self.last.update(numbers)
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **numbers}
        with self.jsonl.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def _gpu_memory(self) -> None:
        import torch

        if torch.cuda.is_available():
            self.metrics.set("gpu_memory_bytes", torch.cuda.max_memory_allocated())
