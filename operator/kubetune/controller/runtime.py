"""The operator's per-process state and the one place status is written.

Status is written from several triggers (the FineTuneJob's own handlers, events of
its Job and pods, the progress scraper). Each write derives the whole status from
the newest observation under a per-job lock, and remembers what it wrote: the watch
event for a write arrives later than the next trigger may, so the remembered status,
not the possibly older cached object, is the "previous" status of the next
derivation. Only this process writes status (peering pauses any other replica).
A new wording of why a job is Unschedulable alone is written at most every
:data:`REWORDING_INTERVAL` seconds per job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubetune import metrics
from kubetune.api import FineTuneJob, InvalidManifest, parse_finetunejob
from kubetune.api.status import FineTuneJobStatus, Progress, State
from kubetune.controller.kube import Kube
from kubetune.controller.status import Observation, Transition, derive_status, transition
from kubetune.controller.views import JobView, PodView, parse_time
from kubetune.render.options import RenderOptions

log = logging.getLogger("kubetune.operator")

#: Seconds between two writes of a job's status that only reword why it is
#: Unschedulable: the scheduler rewrites "0/4 nodes are available: ..." at every attempt,
#: and each write costs the API server a validation of the whole object (CEL included).
REWORDING_INTERVAL = 15.0

Key = tuple[str, str]
"""(namespace, name) of a FineTuneJob."""


@dataclass(frozen=True)
class Snapshot:
    """A FineTuneJob as last seen: parsed spec (or the problems), status, identity."""

    key: Key
    uid: str
    generation: int
    created: datetime | None
    job: FineTuneJob | None
    problems: tuple[str, ...]
    status: FineTuneJobStatus

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Snapshot:
        meta = body.get("metadata") or {}
        document = {key: value for key, value in body.items() if key != "status"}
        job: FineTuneJob | None = None
        problems: tuple[str, ...] = ()
        try:
            job = parse_finetunejob(document)
        except InvalidManifest as invalid:
            problems = tuple(str(error) for error in invalid.errors)
        try:
            status = FineTuneJobStatus.model_validate(body.get("status") or {})
        except ValueError:  # not written by this version: derive it afresh
            status = FineTuneJobStatus()
        return cls(
            key=(meta.get("namespace", ""), meta.get("name", "")),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            created=parse_time(meta.get("creationTimestamp")),
            job=job,
            problems=problems,
            status=status,
        )

    def reference(self) -> dict[str, Any]:
        """A body kopf can post events for."""
        namespace, name = self.key
        return {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"namespace": namespace, "name": name, "uid": self.uid},
        }


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


Emit = Callable[[dict[str, Any], Transition], None]


@dataclass
class Runtime:
    """Settings, API access and the written-status memory of one operator process."""

    kube: Kube
    options: RenderOptions
    progress_interval: float = 30.0
    _written: dict[Key, FineTuneJobStatus] = field(default_factory=dict)
    _written_at: dict[Key, float] = field(default_factory=dict)
    _locks: defaultdict[Key, threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )

    def states(self) -> dict[Key, State]:
        """State of every job this process has written status for (the jobs gauge)."""
        return {key: s.state for key, s in list(self._written.items()) if s.state is not None}

    def forget(self, key: Key) -> None:
        """Drop what is remembered about a deleted FineTuneJob."""
        self._written.pop(key, None)
        self._written_at.pop(key, None)
        self._locks.pop(key, None)

    def previous(self, snapshot: Snapshot) -> FineTuneJobStatus:
        return self._written.get(snapshot.key, snapshot.status)

    def publish(
        self,
        snapshot: Snapshot,
        job: JobView | None,
        pods: Sequence[PodView],
        emit: Emit,
        progress: Callable[[FineTuneJobStatus], Progress | None] | None = None,
    ) -> FineTuneJobStatus:
        """Derive the status from this observation and write it if it changed.

        ``progress`` (the scraper) gets the freshly derived status and may return new
        progress to record with it.
        """
        with self._locks[snapshot.key]:
            previous = self.previous(snapshot)
            observation = Observation(
                generation=snapshot.generation,
                spec=snapshot.job.spec if snapshot.job else None,
                problems=snapshot.problems,
                job=job,
                pods=pods,
                previous=previous,
                now=now(),
            )
            status = derive_status(observation)
            if progress is not None and (scraped := progress(status)) is not None:
                status.progress = scraped
            if status == previous:
                self._written[snapshot.key] = status
                return status
            last = self._written_at.get(snapshot.key)
            recent = last is not None and time.monotonic() - last < REWORDING_INTERVAL
            if recent and _rewording(previous, status):
                return previous
            namespace, name = snapshot.key
            self.kube.patch_status(namespace, name, status.model_dump(mode="json"))
            self._written[snapshot.key] = status
            self._written_at[snapshot.key] = time.monotonic()
            change = transition(previous, status)
            if change is not None:
                log.info("%s/%s: %s (%s)", namespace, name, change.reason, change.message)
                emit(snapshot.reference(), change)
                _observe(snapshot, previous, status)
            return status


def _rewording(previous: FineTuneJobStatus, status: FineTuneJobStatus) -> bool:
    """Whether only the scheduler's wording of an Unschedulable condition changed."""

    def silent(s: FineTuneJobStatus) -> FineTuneJobStatus:
        quiet = [
            c.model_copy(update={"message": ""}) if c.reason == "Unschedulable" else c
            for c in s.conditions
        ]
        return s.model_copy(update={"conditions": quiet})

    return silent(previous) == silent(status)


def _observe(snapshot: Snapshot, previous: FineTuneJobStatus, status: FineTuneJobStatus) -> None:
    """Histogram samples for a state change."""
    if status.state == "Running" and previous.state != "Running" and previous.startTime is None:
        queued_since = snapshot.created
        if queued_since is not None and status.startTime is not None:
            metrics.QUEUED.observe(max(0.0, (status.startTime - queued_since).total_seconds()))
    if status.state in ("Succeeded", "Failed") and previous.state != status.state:
        started = status.startTime or snapshot.created
        if started is not None and status.completionTime is not None:
            seconds = max(0.0, (status.completionTime - started).total_seconds())
            metrics.JOB_DURATION.labels(outcome=status.state).observe(seconds)
