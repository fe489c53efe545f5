"""Monitoring beyond the loss: perplexity, early stopping, and the training-curves PNG.

Token accuracy needs no code here: TRL's SFT trainer logs ``mean_token_accuracy`` for
training and evaluation, and the reward trainer logs pairwise ``accuracy``. Perplexity
is ``exp(eval_loss)`` for a causal LM, added to the same log record so that the
metrics file, the Prometheus gauges and the result all see it.

Early stopping is our own callback rather than transformers' ``EarlyStoppingCallback``:
that one needs ``load_best_model_at_end`` (extra checkpoints) and cannot say why it
stopped, while the result of a job must state the reason for finishing early.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

if TYPE_CHECKING:
    import torch

    from kubetune_contract.api.training import EarlyStoppingSpec

log = logging.getLogger(__name__)

#: File name of the curves saved next to the adapter.
CURVES_FILE = "training-curves.png"
#: Most trainable weights early stopping keeps a copy of (500 M: 1 GB in bf16).
SNAPSHOT_LIMIT = 500_000_000
#: exp() of anything above this overflows float64's useful range for a report.
_MAX_LOG_PERPLEXITY = 50.0


@runtime_checkable
class Reporting(Protocol):
    """A callback that has something to say in the result once training is over."""

    def result_notes(self) -> tuple[list[str], dict[str, Any]]:
        """Sentences for the termination message, and entries for the manifest."""
        ...


class PerplexityCallback(TrainerCallback):
    """Adds ``eval_perplexity`` (``exp(eval_loss)``) to every evaluation log record.

    Must run before the callbacks that record logs (it edits the dict they receive) and
    also edits the record already kept in ``state.log_history``.
    """

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        if not logs or not isinstance(logs.get("eval_loss"), int | float):
            return
        perplexity = math.exp(min(float(logs["eval_loss"]), _MAX_LOG_PERPLEXITY))
        logs["eval_perplexity"] = perplexity
        if state.log_history and state.log_history[-1].get("eval_loss") == logs["eval_loss"]:
            state.log_history[-1]["eval_perplexity"] = perplexity


class EarlyStopping(TrainerCallback):
    """Stops training when ``spec.metric`` has not improved by more than ``minDelta`` for
    ``patience`` evaluations in a row; :attr:`reason` then says so in words.

    Stopping on overfitting but publishing the weights of ``patience`` evaluations later
    would publish the overfit model, so the trainable weights of the best evaluation are
    kept in CPU memory and put back when training stops, as long as there are at most
    :data:`SNAPSHOT_LIMIT` of them (an adapter; not a full 70B fine-tune). Callers then
    evaluate again: the reported metrics must describe the published weights.
    """

    def __init__(self, spec: EarlyStoppingSpec) -> None:
        self.metric = spec.metric if spec.metric.startswith("eval_") else f"eval_{spec.metric}"
        self.mode = spec.mode
        self.patience = spec.patience
        self.min_delta = float(spec.minDelta)
        self.best: float | None = None
        self.best_step = 0
        self.waited = 0
        self.reason: str | None = None
        self.stopped_step: int | None = None
        self.restored_step: int | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model: torch.nn.Module | None = None,
        **_: Any,
    ) -> None:
        if self.reason is not None:  # the evaluation of the restored weights
            return
        value = (metrics or {}).get(self.metric)
        if value is None:
            available = ", ".join(sorted(k for k in metrics or {} if k.startswith("eval_")))
            log.warning(
                "early stopping: %s not among the evaluation metrics (%s); not stopping on it",
                self.metric,
                available,
            )
            return
        if self._improved(float(value)):
            self.best, self.best_step, self.waited = float(value), state.global_step, 0
            self._best_weights = _snapshot(model) if model is not None else None
            return
        self.waited += 1
        if self.waited >= self.patience and state.global_step < state.max_steps:
            self.stopped_step = state.global_step
            self.reason = (
                f"early stopping at step {state.global_step} of {state.max_steps}: "
                f"{self.metric} did not improve by more than {self.min_delta:g} for "
                f"{self.waited} evaluations (best {self.best:.4g} at step {self.best_step}, "
                f"last {float(value):.4g})"
            )
            if model is not None and self._best_weights is not None:
                _restore(model, self._best_weights)
                self.restored_step = self.best_step
                self.reason += f"; the weights of step {self.best_step} are restored"
            log.info("%s", self.reason)
            control.should_training_stop = True

    def result_notes(self) -> tuple[list[str], dict[str, Any]]:
        if self.reason is None:
            return [], {}
        return [self.reason], {
            "earlyStopping": {
                "stoppedAtStep": self.stopped_step,
                "metric": self.metric,
                "best": self.best,
                "bestStep": self.best_step,
                "restoredStep": self.restored_step,
                "reason": self.reason,
            }
        }


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """A CPU copy of the trainable weights, or ``None`` when they are too many."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if sum(p.numel() for _, p in trainable) > SNAPSHOT_LIMIT:
        return None
    return {n: p.detach().to("cpu", copy=True) for n, p in trainable}


def _restore(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name].to(param.device))


def save_curves(metrics_file: Path, folder: Path, title: str) -> Path | None:
    """Draw loss, eval loss, learning rate and grad norm into ``folder/training-curves.png``.

    A plot is a convenience: a run with nothing plottable (or without matplotlib) still
    publishes its adapter, with a warning instead of the picture.
    """
    from kubetune_contract.curves import plot_curves, read_records

    if not metrics_file.exists():
        return None
    with metrics_file.open(encoding="utf-8") as lines:
        records = read_records(lines)
    try:
        return plot_curves(records, folder / CURVES_FILE, title)
    except (ValueError, ImportError) as exc:
        log.warning("no training curves: %s", exc)
        return None
