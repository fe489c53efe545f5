"""SIGTERM -> a checkpoint at the next step boundary -> stop, within the grace period.

Kubernetes sends SIGTERM on preemption, eviction, node drain or a user's suspend, then
SIGKILL after ``terminationGracePeriodSeconds``. This callback replaces transformers'
``enable_jit_checkpoint`` handler for three reasons:

- it saves through the Trainer's ordinary save after the optimizer step, so the
  checkpoint is identical to a periodic one and a resumed run continues bit for bit
  (the JIT handler may save between backward and optimizer step, after the step's
  random numbers were drawn);
- it requests the save at once (the JIT handler waits 3 s of the grace period first);
- under torchrun every rank stops at the same step: the request is agreed across ranks
  at each step end (:func:`kubetune_trainer.distributed.any_rank`), otherwise one rank
  saves while another waits in the next step's all-reduce.

A second SIGTERM changes nothing (the request stands); if SIGKILL arrives before the
upload's marker is written, the store holds an incomplete checkpoint that is never
resumed from (:mod:`kubetune_trainer.checkpoints`).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_trainer import distributed

log = logging.getLogger(__name__)

Handler = Any  # what signal.signal returns: a callable, SIG_DFL, SIG_IGN or None


class PreemptionCallback(TrainerCallback):
    """Turns SIGTERM into "save at the end of this step, then stop training"."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        """The step after which training stopped for a SIGTERM (``None``: it did not)."""
        self._previous: Handler = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping")
        self.requested = True

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if distributed.any_rank(self.requested, args.device):
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
