"""Compact, immutable views of the Job and pods a FineTuneJob owns.

The operator keeps these (not whole objects) in its in-memory indexes: a pod manifest
is kilobytes, its view a few hundred bytes, so memory stays small with thousands of
jobs. They are also the input of the pure status derivation in
:mod:`kubetune.controller.status`, so unit tests build them from plain manifests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubetune.render.job import CONFIG_DIGEST_ANNOTATION, TEMPLATE_HASH_ANNOTATION
from kubetune.render.pod import COMPLETION_INDEX_ANNOTATION, CONTAINER_NAME

Key = tuple[str, str]
"""(namespace, name) of a FineTuneJob: what its Job, pods and every trigger are filed by."""

#: Job spec fields that can change on a live Job and follow the FineTuneJob spec.
SYNCED_FIELDS = ("activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished", "suspend")


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339) as an aware datetime; ``None`` when absent."""
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class ConditionView:
    """One condition of a Job or pod."""

    status: str
    reason: str
    message: str
    last_transition: datetime | None


def _conditions(status: Mapping[str, Any]) -> dict[str, ConditionView]:
    return {
        c["type"]: ConditionView(
            status=c.get("status", "Unknown"),
            reason=c.get("reason", ""),
            message=c.get("message", ""),
            last_transition=parse_time(c.get("lastTransitionTime")),
        )
        for c in status.get("conditions") or []
    }


@dataclass(frozen=True)
class Terminated:
    """How the trainer container ended: exit code and termination message."""

    exit_code: int
    reason: str
    message: str
    finished_at: datetime | None


@dataclass(frozen=True)
class PodView:
    """What the status derivation needs from a trainer pod."""

    name: str
    job_uid: str | None
    index: int
    phase: str
    created: datetime | None
    started: datetime | None
    deleting: bool
    ip: str | None
    scheduled: ConditionView | None
    disrupted: bool
    waiting_reason: str | None
    waiting_message: str
    terminated: Terminated | None
    image: str = ""
    """The trainer container's image (for messages about an image that can't be had)."""
    pod_reason: str = ""
    pod_message: str = ""
    """The pod's own ``status.reason``/``message`` (the kubelet's ``Evicted`` and why)."""
    node_lost: bool = False
    """The node lifecycle controller marked the pod not ready: its node stopped
    reporting. (It sets ``Ready`` False without a reason; the kubelet always gives one,
    such as ``ContainersNotReady`` or ``PodCompleted``.)"""
    disruption: str = ""
    """``reason: message`` of a true ``DisruptionTarget`` condition (who evicts it, why)."""

    @property
    def unschedulable(self) -> bool:
        """The scheduler tried and found no node (its message says why)."""
        return (
            self.scheduled is not None
            and self.scheduled.status == "False"
            and self.scheduled.reason == "Unschedulable"
        )

    @classmethod
    def from_manifest(cls, pod: Mapping[str, Any]) -> PodView:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        spec_container: Mapping[str, Any] = next(
            (
                c
                for c in (pod.get("spec") or {}).get("containers") or []
                if c.get("name") == CONTAINER_NAME
            ),
            {},
        )
        owner = next(
            (ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None
        )
        container: Mapping[str, Any] = next(
            (c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER_NAME),
            {},
        )
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        ended = state.get("terminated")
        conditions = _conditions(status)
        disruption = conditions.get("DisruptionTarget")
        return cls(
            name=meta.get("name", ""),
            job_uid=owner.get("uid") if owner else None,
            index=int((meta.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION, 0)),
            phase=status.get("phase", "Pending"),
            created=parse_time(meta.get("creationTimestamp")),
            started=parse_time(status.get("startTime")),
            deleting=meta.get("deletionTimestamp") is not None,
            ip=status.get("podIP"),
            scheduled=conditions.get("PodScheduled"),
            disrupted=disruption is not None and disruption.status == "True",
            waiting_reason=waiting.get("reason"),
            waiting_message=waiting.get("message", ""),
            terminated=Terminated(
                exit_code=int(ended.get("exitCode", 0)),
                reason=ended.get("reason", ""),
                message=ended.get("message", ""),
                finished_at=parse_time(ended.get("finishedAt")),
            )
            if ended
            else None,
            image=str(spec_container.get("image", "")),
            pod_reason=status.get("reason", ""),
            pod_message=status.get("message", ""),
            node_lost=status.get("phase") == "Running"
            and "Ready" in conditions
            and conditions["Ready"].status == "False"
            and not conditions["Ready"].reason,
            disruption=f"{disruption.reason}: {disruption.message}"
            if disruption is not None and disruption.status == "True"
            else "",
        )


@dataclass(frozen=True)
class WorkloadView:
    """Why Kueue has not admitted (or has evicted) a queued Job, in Kueue's words: the
    Workload it made for the Job, reduced to the condition that explains the wait."""

    reason: str
    message: str
    evicted: bool
    """The Workload was admitted and then evicted (preempted, deactivated, ...)."""

    @classmethod
    def from_manifest(cls, workload: Mapping[str, Any]) -> WorkloadView | None:
        """The explanation, or ``None`` when the Workload says nothing about a wait
        (admitted, or not yet looked at by Kueue)."""
        conditions = _conditions(workload.get("status") or {})
        evicted = conditions.get("Evicted")
        quota = conditions.get("QuotaReserved")
        waiting = quota if quota is not None and quota.status == "False" else None
        if evicted is not None and evicted.status == "True":
            later = f"; {waiting.message}" if waiting and waiting.message else ""
            return cls(evicted.reason, evicted.message + later, evicted=True)
        if waiting is not None and (waiting.reason or waiting.message):
            return cls(waiting.reason, waiting.message, evicted=False)
        return None


@dataclass(frozen=True)
class JobView:
    """What the status derivation and the controller need from the batch/v1 Job."""

    uid: str
    suspended: bool
    template_hash: str | None
    config_digest: str | None
    active: int
    completion_time: datetime | None
    conditions: Mapping[str, ConditionView]
    settings: Mapping[str, Any]
    """The Job's spec fields the controller keeps in sync (see :data:`SYNCED_FIELDS`)."""

    def condition(self, kind: str) -> ConditionView | None:
        """The condition ``kind`` when it is True, else ``None``."""
        found = self.conditions.get(kind)
        return found if found is not None and found.status == "True" else None

    @property
    def success(self) -> ConditionView | None:
        """Set once the Job succeeded: ``SuccessCriteriaMet`` comes before ``Complete``."""
        return self.condition("Complete") or self.condition("SuccessCriteriaMet")

    @property
    def failure(self) -> ConditionView | None:
        """Set once the Job failed: ``FailureTarget`` comes before ``Failed`` (which
        waits for the pods to terminate)."""
        return self.condition("Failed") or self.condition("FailureTarget")

    @classmethod
    def from_manifest(cls, job: Mapping[str, Any]) -> JobView:
        meta = job.get("metadata") or {}
        spec = job.get("spec") or {}
        status = job.get("status") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            uid=meta.get("uid", ""),
            suspended=bool(spec.get("suspend", False)),
            template_hash=annotations.get(TEMPLATE_HASH_ANNOTATION),
            config_digest=annotations.get(CONFIG_DIGEST_ANNOTATION),
            active=int(status.get("active", 0)),
            completion_time=parse_time(status.get("completionTime")),
            conditions=_conditions(status),
            settings={name: spec.get(name) for name in SYNCED_FIELDS},
        )
