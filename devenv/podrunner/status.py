"""Pure part of the pod runner: the Pod ``status`` a kubelet would report.

Controllers read these fields, so they follow the kubelet closely: the Job controller
counts ``phase`` and applies ``podFailurePolicy`` to ``containerStatuses[].state.
terminated.exitCode``; the kubetune operator scrapes ``podIP`` and reads the result from
the termination ``message``. Rules kept from the kubelet:

* phase: ``Pending`` until the process started, ``Running`` while it runs (or waits to
  be restarted), ``Succeeded`` when it exited 0, ``Failed`` otherwise (restartPolicy
  ``Never``, or ``OnFailure`` for a pod being deleted);
* a container killed by signal N exits ``128 + N``; reason ``Completed`` for 0, else
  ``Error``;
* the termination message is the file's first 4096 bytes; with
  ``FallbackToLogsOnError`` and an empty file after a non-zero exit it is the log's last
  80 lines, at most 2048 bytes (the kubelet's limits);
* a container without readiness probe is ready while it runs; ``Ready`` and
  ``ContainersReady`` turn ``False`` with reason ``PodCompleted`` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Running",
    "Terminated",
    "Waiting",
    "exit_reason",
    "pod_status",
    "termination_message",
    "timestamp",
]

MESSAGE_LIMIT = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as in every Kubernetes object."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Waiting:
    """Not started (yet): ``ContainerCreating``, ``CreateContainerConfigError``..."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    """The process runs since ``started_at``."""

    started_at: datetime


@dataclass(frozen=True)
class Terminated:
    """The process exited."""

    exit_code: int
    reason: str
    started_at: datetime
    finished_at: datetime
    message: str = ""
    signal: int | None = None


ContainerState = Waiting | Running | Terminated


def exit_reason(exit_code: int) -> str:
    """The kubelet's reason for a terminated container (OOM kills aren't detected here)."""
    return "Completed" if exit_code == 0 else "Error"


def termination_message(
    file_bytes: bytes, log_text: str, exit_code: int, policy: str | None
) -> str:
    """The terminated container's ``message`` (see the module docstring)."""
    message = file_bytes[:MESSAGE_LIMIT].decode(errors="replace")
    if message.strip() or exit_code == 0 or policy != "FallbackToLogsOnError":
        return message
    tail = "\n".join(log_text.splitlines()[-LOG_FALLBACK_LINES:])
    encoded = tail.encode()
    if len(encoded) > LOG_FALLBACK_BYTES:
        tail = encoded[-LOG_FALLBACK_BYTES:].decode(errors="ignore")
    return tail


def _state(state: ContainerState) -> dict[str, Any]:
    if isinstance(state, Waiting):
        waiting: dict[str, Any] = {"reason": state.reason}
        if state.message:
            waiting["message"] = state.message
        return {"waiting": waiting}
    if isinstance(state, Running):
        return {"running": {"startedAt": timestamp(state.started_at)}}
    terminated: dict[str, Any] = {
        "exitCode": state.exit_code,
        "reason": state.reason,
        "startedAt": timestamp(state.started_at),
        "finishedAt": timestamp(state.finished_at),
    }
    if state.message:
        terminated["message"] = state.message
    if state.signal is not None:
        terminated["signal"] = state.signal
    return {"terminated": terminated}


def _phase(state: ContainerState, restart_count: int) -> str:
    if isinstance(state, Running):
        return "Running"
    if isinstance(state, Waiting):
        return "Running" if restart_count else "Pending"
    return "Succeeded" if state.exit_code == 0 else "Failed"


def _condition(kind: str, true: bool, since: str, reason: str | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {
        "type": kind,
        "status": "True" if true else "False",
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason:
        cond["reason"] = reason
    return cond


def pod_status(
    pod: Mapping[str, Any],
    state: ContainerState,
    *,
    pod_ip: str,
    host_ip: str,
    start_time: datetime,
    now: datetime,
    restart_count: int = 0,
    last_state: Terminated | None = None,
) -> dict[str, Any]:
    """The full ``status`` of ``pod`` (wire form) with its one container in ``state``.

    Conditions keep their ``lastTransitionTime`` while their status doesn't change.
    ``PodScheduled`` is copied from the pod (the scheduler set it).
    """
    old = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    stamp = timestamp(now)

    def keep(cond: dict[str, Any]) -> dict[str, Any]:
        previous = old.get(cond["type"])
        if previous and previous.get("status") == cond["status"]:
            cond["lastTransitionTime"] = previous.get("lastTransitionTime", stamp)
        return cond

    container = (pod.get("spec") or {}).get("containers", [{}])[0]
    phase = _phase(state, restart_count)
    ready = isinstance(state, Running)
    not_ready = (
        None
        if ready
        else ("PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady")
    )
    conditions = [
        keep(_condition("Initialized", True, stamp)),
        keep(_condition("Ready", ready, stamp, not_ready)),
        keep(_condition("ContainersReady", ready, stamp, not_ready)),
        old.get("PodScheduled") or _condition("PodScheduled", True, stamp),
    ]
    container_status: dict[str, Any] = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": restart_count,
        "state": _state(state),
        "lastState": _state(last_state) if last_state else {},
    }
    if not isinstance(state, Waiting):
        container_status["containerID"] = f"podrunner://{pod['metadata'].get('uid', '')}"
    return {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": timestamp(start_time),
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
        "containerStatuses": [container_status],
    }
