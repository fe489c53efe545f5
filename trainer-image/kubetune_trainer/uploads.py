"""Uploading the Trainer's checkpoints to the output store, through store outages.

Rank 0 uploads each checkpoint the Trainer saves (:class:`CheckpointUploadCallback`).
Every storage call already retries with backoff (:mod:`kubetune_trainer.storage`); when
even that fails, the store is treated as *down*: training goes on (losing the store for a
minute must not cost hours of GPU time), the newest local checkpoint is retried at later
step ends on a growing interval, and only when the store has been down for longer than
``$KUBETUNE_STORAGE_OUTAGE_SECONDS`` (default 900) does the run fail with the retriable
exit code, since a run whose checkpoints cannot be kept is a run a preemption would lose.
A checkpoint counts as uploaded only once its marker is written, so nothing an outage cut
short is ever resumed from.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_trainer import distributed, storage
from kubetune_trainer.checkpoints import (
    INCOMPLETE_SENTINEL,
    LOCAL_NAME,
    CheckpointStore,
    RemoteCheckpoint,
)
from kubetune_trainer.errors import InfrastructureError
from kubetune_trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)

OUTAGE_ENV = "KUBETUNE_STORAGE_OUTAGE_SECONDS"
DEFAULT_OUTAGE_SECONDS = 900.0
#: The longest wait between two upload attempts while the store is down.
MAX_RETRY_INTERVAL_SECONDS = 120.0


def newest_local(output_dir: Path) -> tuple[int, Path] | None:
    """The newest finished checkpoint folder the Trainer wrote, as ``(step, folder)``.

    The newest folder rather than ``checkpoint-<global_step>``: a checkpoint is named after
    the step it was saved at, which may precede the step training stopped at.
    """
    found = sorted(
        (int(match.group(1)), path)
        for path in output_dir.glob("checkpoint-*")
        if (match := LOCAL_NAME.match(path.name)) and not (path / INCOMPLETE_SENTINEL).exists()
    )
    return found[-1] if found else None


def _rng_state(folder: Path) -> tuple[str, bytes] | None:
    """This rank's RNG state file in ``folder`` (the Trainer's name under torchrun)."""
    if not distributed.active():
        return None
    path = folder / f"rng_state_{distributed.rank()}.pth"
    return (path.name, path.read_bytes()) if path.is_file() else None


class CheckpointUploadCallback(TrainerCallback):
    """Uploads each checkpoint the Trainer saves (rank 0, marker last), riding out outages."""

    def __init__(
        self,
        store: CheckpointStore,
        metrics: TrainerMetrics,
        output_dir: Path,
        outage_limit_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.output_dir = output_dir
        self.outage_limit = (
            outage_limit_seconds
            if outage_limit_seconds is not None
            else float(os.environ.get(OUTAGE_ENV, DEFAULT_OUTAGE_SECONDS))
        )
        self.uploaded: list[RemoteCheckpoint] = []
        """Checkpoints of this run the store still keeps, oldest first: those it uploaded
        and the one it resumed from."""
        self.resumes = 0
        """Recorded in each checkpoint's marker; set once the run knows it resumed."""
        self.down_since: float | None = None
        self.failures = 0
        self._retry_at = 0.0

    def resumed_from(self, checkpoint: RemoteCheckpoint | None, resumes: int) -> None:
        """The run starts from ``checkpoint`` (already in the store: never uploaded again,
        even when it stays the newest local one) after ``resumes`` resumes."""
        self.resumes = resumes
        self.metrics.set("resumes", resumes)
        self.uploaded = [checkpoint] if checkpoint is not None else []

    def pending(self) -> bool:
        """Whether the newest local checkpoint is not in the store yet."""
        newest = newest_local(self.output_dir)
        return newest is not None and all(c.step != newest[0] for c in self.uploaded)

    def upload(self, state: TrainerState) -> bool:
        """Upload the newest local checkpoint unless it is there; True once it is.

        Raises :class:`InfrastructureError` when the store has been down past the bound.
        """
        newest = newest_local(self.output_dir)
        if newest is None or not self.pending():
            return True
        step, folder = newest
        eval_losses = [
            float(e["eval_loss"])
            for e in state.log_history
            if "eval_loss" in e and e.get("step", 0) <= step
        ]
        eval_loss = eval_losses[-1] if eval_losses else None
        try:
            checkpoint = self.store.upload(folder, step, eval_loss, self.resumes)
        except InfrastructureError as exc:
            self._failed(step, exc)
            return False
        if self.down_since is not None:
            log.info("the store is back after %.0fs", time.monotonic() - self.down_since)
        self.down_since, self.failures = None, 0
        # What the store still holds after its prune: the newest ``keep``.
        self.uploaded = [*self.uploaded, checkpoint][-self.store.keep :]
        self.metrics.inc("checkpoints")
        self.metrics.set("last_checkpoint_step", step)
        log.info("checkpoint %d uploaded to %s", step, checkpoint.uri)
        return True

    def _failed(self, step: int, exc: InfrastructureError) -> None:
        now = time.monotonic()
        self.down_since = self.down_since if self.down_since is not None else now
        self.failures += 1
        self.metrics.inc("checkpoint_upload_failures")
        down_for = now - self.down_since
        if down_for >= self.outage_limit:
            raise InfrastructureError(
                f"the output store has been unreachable for {down_for:.0f}s (limit "
                f"{self.outage_limit:.0f}s, ${OUTAGE_ENV}); checkpoint {step} is not saved: "
                f"{exc}"
            ) from exc
        # Go on with storage's own backoff schedule, where its attempts stopped.
        interval = min(
            MAX_RETRY_INTERVAL_SECONDS,
            storage.BASE_DELAY_SECONDS * 2 ** (storage.ATTEMPTS + self.failures - 1),
        )
        self._retry_at = now + interval
        log.warning(
            "checkpoint %d not uploaded, training goes on; retry in %.0fs (store down %.0fs "
            "of at most %.0fs): %s",
            step,
            interval,
            down_for,
            self.outage_limit,
            exc,
        )

    def flush(self, state: TrainerState) -> None:
        """Wait (within the outage bound) until the newest checkpoint is in the store."""
        while not self.upload(state):
            time.sleep(max(0.0, self._retry_at - time.monotonic()))

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        # Each rank writes its RNG state into its own node's copy of the folder; rank 0
        # gathers them all (the gather also waits until every rank has saved) and uploads
        # one whole checkpoint, so a multi-node job resumes every rank's random stream.
        folder = self.output_dir / f"checkpoint-{state.global_step}"
        rng_states = distributed.gather_to_zero(_rng_state(folder))
        if not state.is_world_process_zero:
            return
        for found in rng_states or []:
            if found is not None and not (folder / found[0]).exists():
                (folder / found[0]).write_bytes(found[1])
        self.upload(state)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        retry_due = self.down_since is not None and time.monotonic() >= self._retry_at
        if state.is_world_process_zero and retry_due:
            self.upload(state)
