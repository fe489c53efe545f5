"""SIGTERM or SIGINT -> a checkpoint at the next step boundary -> stop, within the grace period.

Kubernetes sends SIGTERM on preemption, eviction, node drain or a user's suspend, then
SIGKILL after ``terminationGracePeriodSeconds``; a local ``kubetune run`` gets SIGINT from
Ctrl-C (or SIGTERM from ``kill``). Both entry points treat the two signals alike, so a
stopped run always continues the same way (exit code 5, resume from the checkpoint).

Inside the training loop the signal is a request: the step in progress finishes, the
Trainer saves through its ordinary save, and training stops. This replaces transformers'
``enable_jit_checkpoint`` handler for three reasons:

- the checkpoint is saved after the optimizer step, so it is identical to a periodic one
  and a resumed run continues bit for bit (the JIT handler may save between backward and
  optimizer step, after the step's random numbers were drawn);
- the save is requested at once (the JIT handler waits 3 s of the grace period first);
- under torchrun every rank stops at the same step: the request is agreed across ranks
  at each step end (:func:`kubetune_trainer.distributed.any_rank`), otherwise one rank
  saves while another waits in the next step's all-reduce.

Outside the loop (loading the model, the evaluation before training, publishing) there
is nothing unsaved worth the wait, so the signal raises
:class:`~kubetune_trainer.errors.StopRequested` at once and the run ends with exit code 5;
the next run resumes from the newest complete checkpoint (publishing is safe to cut
short: the manifest is written last).

A second signal changes nothing (the request stands); if SIGKILL arrives before the
upload's marker is written, the store holds an incomplete checkpoint that is never
resumed from (:mod:`kubetune_trainer.checkpoints`).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_trainer import distributed
from kubetune_trainer.errors import StopRequested
from kubetune_trainer.startup_signals import STOP_SIGNALS, take

log = logging.getLogger(__name__)


class PreemptionCallback(TrainerCallback):
    """Turns a stop signal into "save at the end of this step, then stop training"."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = "SIGTERM"
        """The signal that stopped the run (the first one received)."""
        self.stopped_at: int | None = None
        """The step after which training stopped for a signal (``None``: it did not)."""
        self._in_loop = False

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Handle :data:`STOP_SIGNALS` for the whole run (must be the main thread)."""
        previous = {kind: signal.signal(kind, self._on_signal) for kind in STOP_SIGNALS}
        try:
            held = take()  # one that came while the trainer started (startup_signals)
            if held is not None:
                self._on_signal(held, None)
            yield
        finally:
            for kind, handler in previous.items():
                signal.signal(kind, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._in_loop:
            raise StopRequested(
                f"stopped by {signal.Signals(signum).name} outside the training loop; the "
                "next run resumes from the newest complete checkpoint in the output store, "
                "if any"
            )
        if not self.requested:
            self.signal_name = signal.Signals(signum).name
            log.warning(
                "%s: saving a checkpoint at the end of this step, then stopping", self.signal_name
            )
        self.requested = True

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._in_loop = True

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if distributed.any_rank(self.requested, args.device):
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        # The Trainer ends the epoch it stopped in, evaluating with epoch-end evaluation.
        # Mid-epoch that evaluation is none the job asked for; it would only spend the
        # grace period.
        if self.stopped_at is not None and not float(state.epoch or 0.0).is_integer():
            control.should_evaluate = False

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._in_loop = False
