"""The operator's per-process state and the one place status is written.

Each reconciliation pass (:mod:`kubetune.controller.reconciler`) derives the whole
status from the newest observation and hands it to :meth:`Runtime.publish`, which
writes it when :mod:`kubetune.controller.pacing` says so and remembers what it wrote.
The watch event for a write arrives later than the next pass may run, so the
remembered status, not the possibly older cached object, is the "previous" status of
the next derivation — but only while the cached object is at a version this process
knows the status of (the one a write was based on, or one it produced). At any other
version someone else wrote the object, and its status is the truth again: nothing
here trusts memory over the cluster.

Every write names the version it was derived from (a precondition): a write from an
outdated view (a spec edited meanwhile, a replica paused by peering that still holds
old views) fails with a conflict instead of replacing a newer status, and the next
pass derives again.

Events are posted here, by the controller's own client: kopf posts events only from
its per-object tasks, and these passes run in the controller's workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetune import metrics
from kubetune.controller.kube import Kube
from kubetune.controller.pacing import Pacing, WriteLog, due, only_progress
from kubetune.controller.policy import PolicyWatch
from kubetune.controller.progress import progress_from_samples
from kubetune.controller.schema import SchemaWatch
from kubetune.controller.status import (
    INVALID_SPEC,
    RESTARTED,
    Observation,
    derive_status,
    restart_note,
    transition,
)
from kubetune.controller.views import JobView, Key, PodView, WorkloadView, parse_time
from kubetune.render.options import RenderOptions
from kubetune_contract.api import FineTuneJob, InvalidManifest, parse_finetunejob
from kubetune_contract.api.policy import POLICY_REASON
from kubetune_contract.api.schema_version import CRD_OUTDATED
from kubetune_contract.api.status import FINISHED_STATES, FineTuneJobStatus, State

__all__ = ["Key", "Runtime", "Snapshot", "now"]

log = logging.getLogger("kubetune.operator")


@dataclass(frozen=True)
class Snapshot:
    """A FineTuneJob as last seen: parsed spec (or the problems), status, identity."""

    key: Key
    uid: str
    generation: int
    resource_version: str
    created: datetime | None
    finetunejob: FineTuneJob | None
    problems: tuple[str, ...]
    status: FineTuneJobStatus

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Snapshot:
        meta = body.get("metadata") or {}
        document = {key: value for key, value in body.items() if key != "status"}
        finetunejob: FineTuneJob | None = None
        problems: tuple[str, ...] = ()
        try:
            finetunejob = parse_finetunejob(document)
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
            resource_version=str(meta.get("resourceVersion", "")),
            created=parse_time(meta.get("creationTimestamp")),
            finetunejob=finetunejob,
            problems=problems,
            status=status,
        )

    def reference(self) -> dict[str, Any]:
        """The object reference of events about it, and of its children's owner."""
        namespace, name = self.key
        return {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "namespace": namespace,
            "name": name,
            "uid": self.uid,
        }


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class _Memory:
    """What this process knows about one FineTuneJob beyond the cached object."""

    status: FineTuneJobStatus | None = None
    versions: tuple[str, ...] = ()
    """Versions of the FineTuneJob at which ``status`` is the status it holds."""
    log: WriteLog = field(default_factory=WriteLog)
    handled: int | None = None
    """The spec generation whose children this process has ensured."""
    reading: tuple[dict[str, float], datetime] | None = None
    """The trainer's newest metrics samples and when they were read."""


@dataclass
class Runtime:
    """Settings, API access and the per-job memory of one operator process."""

    kube: Kube
    options: RenderOptions
    pacing: Pacing = field(default_factory=Pacing)
    start_timeout: float | None = None
    """Seconds a trainer container may stay stuck (an image that can't be pulled, a
    missing Secret) before the job fails; ``None``: for ever."""
    policy: PolicyWatch = field(default_factory=PolicyWatch)
    schema: SchemaWatch = field(default_factory=SchemaWatch)
    _memory: dict[Key, _Memory] = field(default_factory=dict)

    def states(self) -> dict[Key, State]:
        """State of every job this process has derived a status for (the jobs gauge)."""
        return {
            key: m.status.state
            for key, m in list(self._memory.items())
            if m.status is not None and m.status.state is not None
        }

    def running(self) -> list[Key]:
        """Jobs whose status says Running (their progress is read)."""
        return [key for key, state in self.states().items() if state == "Running"]

    def forget(self, key: Key) -> None:
        """Drop what is remembered about a deleted FineTuneJob."""
        self._memory.pop(key, None)

    def seen(self, key: Key, resource_version: str) -> bool:
        """Whether a pass already knows the FineTuneJob at this version (its own
        write's echo, or a re-listing): such a watch event brings nothing new."""
        memory = self._memory.get(key)
        return memory is not None and memory.versions[-1:] == (resource_version,)

    def previous(self, snapshot: Snapshot) -> FineTuneJobStatus:
        """The status the FineTuneJob holds (see the module docstring)."""
        memory = self._memory.get(snapshot.key)
        if memory and memory.status is not None and snapshot.resource_version in memory.versions:
            return memory.status
        return snapshot.status

    def refused(self, snapshot: Snapshot) -> tuple[str, ...]:
        """Why the policy refuses to start this job (empty: it may start).

        Only a job that has not started is judged: a job already training, or finished,
        keeps the verdict it was started under when the policy changes later.
        """
        if snapshot.finetunejob is None or self.previous(snapshot).state in FINISHED_STATES:
            return ()
        return self.policy.problems(snapshot.finetunejob)

    def outdated(self, snapshot: Snapshot) -> str:
        """Why the installed CRD is too old to act on this job (empty: it is not, or the
        job finished and nothing is left to do)."""
        if self.previous(snapshot).state in FINISHED_STATES:
            return ""
        return self.schema.outdated()

    def held(self, snapshot: Snapshot) -> tuple[str, tuple[str, ...]]:
        """The ``Accepted=False`` reason and problems that keep a job from starting (no
        problems: it may start). An outdated CRD comes first: a spec the old schema
        defaulted and validated is not one the policy, or the parser, can judge."""
        if outdated := self.outdated(snapshot):
            return CRD_OUTDATED, (outdated,)
        return POLICY_REASON, self.refused(snapshot)

    def needs_children(self, snapshot: Snapshot) -> bool:
        """Whether this process has yet to ensure the children of the current spec."""
        memory = self._memory.get(snapshot.key)
        return memory is None or memory.handled != snapshot.generation

    def children_ensured(self, snapshot: Snapshot) -> None:
        self._memory.setdefault(snapshot.key, _Memory()).handled = snapshot.generation

    def record(self, key: Key, samples: dict[str, float], read_at: datetime) -> None:
        """A reading of the trainer's metrics, for the job's next pass."""
        self._memory.setdefault(key, _Memory()).reading = (samples, read_at)

    def publish(
        self,
        snapshot: Snapshot,
        batch_job: JobView | None,
        pods: Sequence[PodView],
        workload: WorkloadView | None = None,
    ) -> tuple[FineTuneJobStatus, float | None]:
        """Derive the status from this observation; write it if it changed and its
        time has come. A job with no Job yet is judged by the CRD's schema version and
        the policy too (:meth:`held`): no Job is made for a held one, so its status says why.
        Returns the status the job now holds and, when a write waits, the seconds until
        it is due (the caller passes again then).

        Raises :class:`ApiException` when the write fails (409: the job changed since
        ``snapshot``; its watch event brings the new version).
        """
        memory = self._memory.setdefault(snapshot.key, _Memory())
        previous = self.previous(snapshot)
        known = snapshot.resource_version in memory.versions
        versions = memory.versions if known else (snapshot.resource_version,)
        if versions[-1] == snapshot.resource_version:
            versions = (snapshot.resource_version,)  # the cache caught up with us
        reason, held = self.held(snapshot) if batch_job is None else (INVALID_SPEC, ())
        observation = Observation(
            generation=snapshot.generation,
            spec=snapshot.finetunejob.spec if snapshot.finetunejob and not held else None,
            problems=held or snapshot.problems,
            reason=reason if held else INVALID_SPEC,
            batch_job=batch_job,
            pods=pods,
            previous=previous,
            now=now(),
            start_timeout=self.start_timeout,
            workload=workload,
        )
        status = derive_status(observation)
        self._add_reading(memory, status, previous)
        clock = time.monotonic()
        when = due(previous, status, memory.log, clock, self.pacing)
        if when is None or when > clock:
            memory.status, memory.versions = previous, versions
            if when is None:
                memory.log.settled()
                return previous, None
            memory.log.pending(clock)
            return previous, when - clock
        namespace, name = snapshot.key
        written = self.kube.patch_status(
            namespace, name, status.model_dump(mode="json"), versions[-1]
        )
        progress_only = only_progress(previous, status)
        memory.log.wrote(clock, progress=status.progress != previous.progress)
        memory.status, memory.versions = status, (*versions, written)
        metrics.STATUS_WRITES.labels(change="progress" if progress_only else "state").inc()
        self._announce(snapshot, observation, status)
        return status, None

    @staticmethod
    def _add_reading(
        memory: _Memory, status: FineTuneJobStatus, previous: FineTuneJobStatus
    ) -> None:
        """Progress from the newest reading of a running trainer, if not yet in it."""
        if status.state != "Running" or memory.reading is None:
            return
        samples, read_at = memory.reading
        shown = previous.progress.updatedAt if previous.progress else None
        if shown is not None and read_at <= shown:
            return
        progress = progress_from_samples(
            samples, now=read_at, previous=previous.progress, started=status.startTime
        )
        if progress is not None:
            status.progress = progress

    def _announce(
        self, snapshot: Snapshot, observation: Observation, status: FineTuneJobStatus
    ) -> None:
        """Log line, event and histogram samples for a change of state or reason, and a
        Warning event for each restart of the trainer (:func:`restart_note`)."""
        previous = observation.previous
        namespace, name = snapshot.key
        if status.restarts > previous.restarts:
            note = f"restart {status.restarts}: {restart_note(observation)}"
            log.info("%s/%s: %s (%s)", namespace, name, RESTARTED, note)
            self.event(snapshot, "Warning", RESTARTED, note)
        change = transition(previous, status)
        if change is None:
            return
        log.info("%s/%s: %s (%s)", namespace, name, change.reason, change.message)
        self.event(snapshot, change.type, change.reason, change.message)
        _observe(snapshot, previous, status)

    def event(self, snapshot: Snapshot, type: str, reason: str, message: str) -> None:
        """Post an event about the FineTuneJob; a failure is logged, never raised
        (events help a reader, the status is the record)."""
        try:
            self.kube.post_event(snapshot.reference(), type, reason, message)
        except ApiException as error:
            namespace, name = snapshot.key
            log.warning(
                "%s/%s: event %s not posted: %s %s",
                namespace,
                name,
                reason,
                error.status,
                error.reason,
            )


def _observe(snapshot: Snapshot, previous: FineTuneJobStatus, status: FineTuneJobStatus) -> None:
    """Histogram samples for a state change."""
    if status.state == "Running" and previous.state != "Running" and previous.startTime is None:
        queued_since = snapshot.created
        if queued_since is not None and status.startTime is not None:
            metrics.QUEUED.observe(max(0.0, (status.startTime - queued_since).total_seconds()))
    if status.state in FINISHED_STATES and previous.state != status.state:
        started = status.startTime or snapshot.created
        if started is not None and status.completionTime is not None:
            seconds = max(0.0, (status.completionTime - started).total_seconds())
            metrics.JOB_DURATION.labels(outcome=status.state).observe(seconds)
