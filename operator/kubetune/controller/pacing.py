"""When a derived status is written: now, later, or not at all. Pure functions.

Every status write costs the API server a validation of the whole FineTuneJob (its
CEL rules included) and sends a watch event back to the operator, so writes are spent
on what a reader of the status can use:

* a step every job passes through within seconds (``Creating``, ``Pending``,
  ``Starting`` and the like, see :func:`kubetune.controller.status.in_transit`) waits
  up to :attr:`Pacing.settle` seconds from when it was first derived: a job that gets
  from create to Running (or to Unschedulable) within that time gets one status write,
  not one per step, and a job stuck in a step shows it after that time;
* a change of ``status.progress`` alone is written at most every
  :attr:`Pacing.progress` seconds per job (the newest reading then);
* a new wording of why a job is Unschedulable alone (the scheduler rewrites its
  message at every attempt) at most every :attr:`Pacing.rewording` seconds;
* anything else (a state or reason, restarts, checkpoints, a result) at once.

Times are monotonic seconds (``time.monotonic()``), passed in, so tests need no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.controller.status import in_transit
from kubetune_contract.api.status import FineTuneJobStatus


@dataclass(frozen=True)
class Pacing:
    """Seconds a status write may wait, by what changed."""

    settle: float = 15.0
    progress: float = 15.0
    rewording: float = 15.0


@dataclass
class WriteLog:
    """One job's past writes, as :func:`due` needs them."""

    written_at: float | None = None
    progress_written_at: float | None = None
    changed_at: float | None = None
    """When the oldest change not yet written was first derived."""

    def pending(self, now: float) -> None:
        """A derived status differs from the written one (first seen now, or earlier)."""
        if self.changed_at is None:
            self.changed_at = now

    def settled(self) -> None:
        """The derived status equals the written one again: nothing waits."""
        self.changed_at = None

    def wrote(self, now: float, *, progress: bool) -> None:
        self.written_at = now
        if progress:
            self.progress_written_at = now
        self.changed_at = None


def _quiet(status: FineTuneJobStatus, *, progress: bool, wording: bool) -> FineTuneJobStatus:
    """``status`` without its progress and/or the wording of Unschedulable conditions."""
    update: dict[str, object] = {}
    if progress:
        update["progress"] = None
    if wording:
        update["conditions"] = [
            c.model_copy(update={"message": ""}) if c.reason == "Unschedulable" else c
            for c in status.conditions
        ]
    return status.model_copy(update=update)


def only_progress(previous: FineTuneJobStatus, status: FineTuneJobStatus) -> bool:
    """Whether ``status`` differs from ``previous`` in ``progress`` and nowhere else."""
    return previous.progress != status.progress and _quiet(
        previous, progress=True, wording=False
    ) == _quiet(status, progress=True, wording=False)


def _only_rewording(previous: FineTuneJobStatus, status: FineTuneJobStatus) -> bool:
    return _quiet(previous, progress=True, wording=True) == _quiet(
        status, progress=True, wording=True
    )


def due(
    previous: FineTuneJobStatus,
    status: FineTuneJobStatus,
    log: WriteLog,
    now: float,
    pacing: Pacing,
) -> float | None:
    """When ``status`` should replace ``previous`` (a time ``<= now``: at once);
    ``None`` when they are equal."""
    if status == previous:
        return None
    if in_transit(status):
        first_seen = log.changed_at if log.changed_at is not None else now
        return first_seen + pacing.settle
    if only_progress(previous, status):
        last = log.progress_written_at
        return now if last is None else last + pacing.progress
    if _only_rewording(previous, status):
        last = log.written_at
        return now if last is None else last + pacing.rewording
    return now
