"""FineTuneJob status from the observed world: a pure function, recomputed every time.

Level-based: the conditions are derived from the Job and pods as they are now, not from
a count of events, so a missed or repeated event, or an operator restart, changes
nothing. The previous status is consulted only for what the world forgets:
``lastTransitionTime`` (kept while a condition's status is unchanged), ``startTime``,
``completionTime``, the monotonic ``restarts`` count (pods are deleted after they
end), the last progress, and the terminal outcome once the Job is deleted by its TTL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kubetune.api.policy import POLICY_REASON
from kubetune.api.spec import FineTuneJobSpec
from kubetune.api.status import (
    CONDITION_TYPES,
    Condition,
    ConditionStatus,
    ConditionType,
    FineTuneJobStatus,
    Progress,
    State,
)
from kubetune.controller.summary import checkpoints_of, parse_summary, result_of
from kubetune.controller.views import JobView, PodView
from kubetune.render.pod import CONTAINER_NAME
from kubetune_trainer import exit_codes
from kubetune_trainer.termination import Summary

#: Container waiting reasons that need the user (a wrong image, a missing Secret).
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
#: The ``Accepted=False`` reason of a spec the operator can't parse into the API models.
INVALID_SPEC = "InvalidSpec"
#: Job failure reasons where the Job's own account beats the trainer's last words
#: (the trainer only saw a SIGTERM).
_JOB_DECIDED = frozenset({"DeadlineExceeded"})


@dataclass(frozen=True)
class Observation:
    """Everything the status is derived from."""

    generation: int
    spec: FineTuneJobSpec | None
    """The parsed spec; ``None`` when the spec is invalid (see ``problems``)."""
    problems: Sequence[str]
    job: JobView | None
    pods: Sequence[PodView]
    previous: FineTuneJobStatus
    now: datetime
    reason: str = INVALID_SPEC
    """``Accepted=False`` reason when ``spec`` is ``None``: invalid, or refused by policy."""


@dataclass(frozen=True)
class Verdict:
    """One condition's status, reason and message before bookkeeping."""

    status: ConditionStatus
    reason: str
    message: str = ""


@dataclass
class _Draft:
    verdicts: dict[ConditionType, Verdict] = field(default_factory=dict)
    summary: Summary | None = None

    def set(self, kind: ConditionType, status: ConditionStatus, reason: str, msg: str = "") -> None:
        self.verdicts[kind] = Verdict(status, reason, msg)


def _own_pods(obs: Observation) -> list[PodView]:
    """Pods of the current Job (a re-created Job's old pods may still be terminating)."""
    if obs.job is None:
        return []
    return [pod for pod in obs.pods if pod.job_uid == obs.job.uid]


def _last_ended(pods: Sequence[PodView], phase: str) -> PodView | None:
    """The newest pod that terminated in ``phase``, rank 0 first."""
    ended = [p for p in pods if p.phase == phase and p.terminated is not None]

    def newest(pod: PodView) -> tuple[bool, float]:
        finished = pod.terminated.finished_at if pod.terminated else None
        return pod.index == 0, (finished.timestamp() if finished else 0.0)

    return max(ended, key=newest) if ended else None


def _last_summary(pods: Sequence[PodView], phase: str) -> tuple[Summary | None, str]:
    """Summary (and raw message) of the newest terminated pod in ``phase``, rank 0 first."""
    pod = _last_ended(pods, phase)
    message = pod.terminated.message if pod is not None and pod.terminated else ""
    return parse_summary(message), message.strip()


def _oom_killed(pods: Sequence[PodView], spec: FineTuneJobSpec) -> str | None:
    """What to tell the user when the newest failed trainer was OOM-killed, else ``None``.

    The kernel kills the trainer without warning, so it leaves no summary of its own;
    the container's ``OOMKilled`` reason is the only account, and the limit it hit is
    ``spec.resources.memory`` (or, without one, the node's memory).
    """
    pod = _last_ended(pods, "Failed")
    if pod is None or pod.terminated is None or pod.terminated.reason != "OOMKilled":
        return None
    memory = spec.resources.memory
    limit = (
        f"its memory limit, spec.resources.memory ({memory}); raise spec.resources.memory"
        if memory
        else "the node had free (spec.resources.memory is unset); set spec.resources.memory "
        "to what the job needs so that it is scheduled where that much is free"
    )
    return (
        f"container {CONTAINER_NAME} of pod {pod.name} was OOM-killed "
        f"(exit {pod.terminated.exit_code}): the trainer needed more memory than {limit}"
    )


def _invalid(draft: _Draft, obs: Observation) -> None:
    problems = "; ".join(obs.problems)
    draft.set("Accepted", "False", obs.reason, problems)
    why = "the spec is invalid" if obs.reason == INVALID_SPEC else "the policy refuses it"
    for kind in CONDITION_TYPES[1:]:
        draft.set(kind, "False", obs.reason, f"not started: {why}")


def _succeeded(draft: _Draft, pods: Sequence[PodView]) -> None:
    summary, _ = _last_summary(pods, "Succeeded")
    draft.summary = summary
    message = "training finished"
    if summary is not None:
        adapter = (summary.result or {}).get("adapterUri")
        message = f"training finished at step {summary.step}" + (
            f"; adapter at {adapter}" if adapter else ""
        )
    draft.set("Succeeded", "True", "Succeeded", message)
    draft.set("Failed", "False", "Succeeded")
    for kind in ("Queued", "Running", "Suspended"):
        draft.set(kind, "False", "Finished", "the job has finished")


def _failed(draft: _Draft, job: JobView, pods: Sequence[PodView], spec: FineTuneJobSpec) -> None:
    job_failure = job.failure
    job_reason = job_failure.reason if job_failure else "Failed"
    job_message = job_failure.message if job_failure else ""
    summary, raw = _last_summary(pods, "Failed")
    draft.summary = summary
    oom = _oom_killed(pods, spec)
    if job_reason in _JOB_DECIDED:
        reason, message = job_reason, job_message
    elif oom is not None:
        reason = "OOMKilled"
        message = oom + (f" ({job_reason}: {job_message})" if job_message else "")
    elif summary is not None:
        reason = summary.reason or job_reason
        message = summary.message + (f" ({job_reason}: {job_message})" if job_message else "")
    else:
        reason = job_reason
        message = job_message + (f"; last output: {raw}" if raw else "")
    draft.set("Failed", "True", reason, message)
    draft.set("Succeeded", "False", "Failed")
    for kind in ("Queued", "Running", "Suspended"):
        draft.set(kind, "False", "Finished", "the job has finished")


def _not_finished(draft: _Draft) -> None:
    draft.set("Succeeded", "False", "NotFinished")
    draft.set("Failed", "False", "NotFinished")


def _suspended(draft: _Draft, pods: Sequence[PodView]) -> None:
    stopping = [p for p in pods if p.phase in ("Pending", "Running")]
    message = (
        f"stopping {len(stopping)} pod(s); the trainer checkpoints before it exits"
        if stopping
        else "suspended by spec.suspend; set it to false to resume from the newest checkpoint"
    )
    draft.set("Suspended", "True", "Suspended", message)
    draft.set("Queued", "False", "Suspended")
    draft.set("Running", "False", "Suspended", message)


def _active(draft: _Draft, spec: FineTuneJobSpec, pods: Sequence[PodView]) -> None:
    """The Job runs (not suspended): place the pods between queued and running."""
    draft.set("Suspended", "False", "NotSuspended")
    nodes = spec.resources.nodes
    live = [p for p in pods if not p.deleting and p.phase in ("Pending", "Running")]
    running = [p for p in live if p.phase == "Running"]
    unschedulable = [p for p in live if p.unschedulable]
    stuck = [p for p in live if p.waiting_reason in STUCK_REASONS]
    unscheduled = [p for p in live if p.scheduled is None or p.scheduled.status != "True"]
    if len(running) >= nodes:
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set("Running", "True", "Running", f"{len(running)}/{nodes} node(s) training")
    elif unschedulable:
        message = unschedulable[0].scheduled.message if unschedulable[0].scheduled else ""
        draft.set("Queued", "True", "Unschedulable", message)
        draft.set("Running", "False", "Unschedulable", message)
    elif stuck:
        pod = stuck[0]
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set(
            "Running", "False", pod.waiting_reason or "", f"{pod.name}: {pod.waiting_message}"
        )
    elif not live and any(p.phase == "Succeeded" for p in pods):
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set("Running", "True", "Finishing", "the trainer exited; the Job is completing")
    elif not live and any(p.phase == "Failed" for p in pods):
        summary, raw = _last_summary(pods, "Failed")
        oom = _oom_killed(pods, spec)
        why = (
            f"OOMKilled: {oom}"
            if oom
            else f"{summary.reason}: {summary.message}"
            if summary
            else raw or "pod failed"
        )
        if summary is not None and summary.exitCode in exit_codes.NON_RETRIABLE:
            # podFailurePolicy fails the Job for this exit code; its condition follows
            draft.set("Queued", "False", "Scheduled", "every pod is on a node")
            draft.set("Running", "False", "Failing", why)
        else:
            draft.set("Queued", "True", "Restarting", f"the trainer exited ({why}); retrying")
            draft.set("Running", "False", "Restarting", why)
    elif unscheduled or not live:
        draft.set("Queued", "True", "Pending", "waiting for the pods to be created and scheduled")
        draft.set("Running", "False", "Pending", f"{len(running)}/{nodes} node(s) training")
    else:
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set("Running", "False", "Starting", f"{len(running)}/{nodes} node(s) training")


def _lifecycle(draft: _Draft, obs: Observation, spec: FineTuneJobSpec) -> None:
    job = obs.job
    pods = _own_pods(obs)
    queue = spec.scheduling.queueName if spec.scheduling else None
    if job is not None and job.success:
        _succeeded(draft, pods)
        return
    if job is not None and job.failure:
        _failed(draft, job, pods, spec)
        return
    _not_finished(draft)
    if spec.suspend:
        _suspended(draft, pods)
    elif job is None:
        draft.set("Suspended", "False", "NotSuspended")
        draft.set("Queued", "Unknown", "Creating", "creating the Job")
        draft.set("Running", "False", "Pending")
    elif job.suspended and queue:
        draft.set("Suspended", "False", "NotSuspended")
        draft.set(
            "Queued", "True", "WaitingForAdmission", f"waiting for Kueue to admit it ({queue})"
        )
        draft.set("Running", "False", "Queued", f"queued in LocalQueue {queue}")
    elif job.suspended:
        draft.set("Suspended", "False", "Resuming", "resuming the Job")
        draft.set("Queued", "True", "Resuming", "resuming the Job")
        draft.set("Running", "False", "Resuming")
    else:
        _active(draft, spec, pods)


def _conditions(draft: _Draft, obs: Observation) -> list[Condition]:
    """Conditions with ``lastTransitionTime`` kept while a status is unchanged."""
    before = {c.type: c for c in obs.previous.conditions}
    conditions = []
    for kind in CONDITION_TYPES:
        verdict = draft.verdicts[kind]
        old = before.get(kind)
        unchanged = old is not None and old.status == verdict.status
        conditions.append(
            Condition(
                type=kind,
                status=verdict.status,
                reason=verdict.reason,
                message=verdict.message[:32768],
                lastTransitionTime=old.lastTransitionTime if old and unchanged else obs.now,
                observedGeneration=obs.generation,
            )
        )
    return conditions


def state_of(conditions: Sequence[Condition]) -> State:
    """The one-word summary: the first True condition in lifecycle order."""
    by_type = {c.type: c.status for c in conditions}
    if by_type.get("Accepted") == "False":
        return "Invalid"
    order: tuple[tuple[ConditionType, State], ...] = (
        ("Failed", "Failed"),
        ("Succeeded", "Succeeded"),
        ("Suspended", "Suspended"),
        ("Running", "Running"),
        ("Queued", "Queued"),
    )
    return next((state for kind, state in order if by_type.get(kind) == "True"), "Pending")


def _restarts(obs: Observation) -> int:
    """Trainer pods that failed or were disrupted (preempted, evicted) and were replaced.

    Pods stopped by a user's suspend are not restarts. Ended pods disappear (garbage
    collection, a re-created Job), so the count never goes below the one reported.
    """
    per_index: dict[int, list[PodView]] = defaultdict(list)
    for pod in _own_pods(obs):
        per_index[pod.index].append(pod)
    replaced = 0
    for pods in per_index.values():
        pods.sort(key=lambda p: (p.created.timestamp() if p.created else 0.0, p.name))
        replaced += sum(1 for p in pods[:-1] if p.phase == "Failed" or p.disrupted)
    return max(obs.previous.restarts, replaced)


def _newly_suspended_after_start(
    previous: FineTuneJobStatus, conditions: Sequence[Condition]
) -> int:
    """1 when this observation turns Suspended True on a job that has trained, else 0."""
    was = any(c.type == "Suspended" and c.status == "True" for c in previous.conditions)
    now = any(c.type == "Suspended" and c.status == "True" for c in conditions)
    return int(now and not was and previous.startTime is not None)


def _start_time(obs: Observation, running: bool) -> datetime | None:
    if obs.previous.startTime is not None:
        return obs.previous.startTime
    started = [p.started for p in _own_pods(obs) if p.started and p.phase != "Pending"]
    if started:
        return min(started)
    return obs.now if running else None


def _completion_time(obs: Observation, state: State) -> datetime | None:
    if state not in ("Succeeded", "Failed"):
        return None
    if obs.previous.completionTime is not None:
        return obs.previous.completionTime
    job = obs.job
    if job is not None and job.completion_time is not None:
        return job.completion_time
    failure = job.failure if job is not None else None
    if failure is not None and failure.last_transition is not None:
        return failure.last_transition
    return obs.now


def _final_progress(previous: Progress | None, summary: Summary, now: datetime) -> Progress:
    """Progress as the trainer reported it when it ended."""
    metrics = summary.metrics or {}
    total = summary.totalSteps or (previous.totalSteps if previous else None)
    percent = min(100, summary.step * 100 // total) if total else None
    return Progress(
        step=summary.step,
        totalSteps=total or None,
        percent=percent,
        epoch=metrics.get("epoch", previous.epoch if previous else None),
        loss=metrics.get("loss", previous.loss if previous else None),
        evalLoss=metrics.get("evalLoss", previous.evalLoss if previous else None),
        tokensPerSecond=previous.tokensPerSecond if previous else None,
        etaSeconds=0 if summary.outcome == "Succeeded" else None,
        updatedAt=now,
    )


def _is_terminal(status: FineTuneJobStatus) -> bool:
    return status.state in ("Succeeded", "Failed")


def derive_status(obs: Observation) -> FineTuneJobStatus:
    """The FineTuneJob status for what is observed in ``obs``."""
    previous = obs.previous
    if obs.spec is not None and obs.job is None and _is_terminal(previous):
        # The Job went with its TTL; the outcome is history only the status keeps.
        return previous.model_copy(update={"observedGeneration": obs.generation})
    draft = _Draft()
    if obs.spec is None:
        _invalid(draft, obs)
    else:
        draft.set("Accepted", "True", "Accepted", "the spec is valid")
        _lifecycle(draft, obs, obs.spec)
    conditions = _conditions(draft, obs)
    state = state_of(conditions)
    suspensions = previous.suspensions + _newly_suspended_after_start(previous, conditions)
    status = FineTuneJobStatus(
        observedGeneration=obs.generation,
        conditions=conditions,
        state=state,
        progress=previous.progress,
        startTime=_start_time(obs, state == "Running"),
        completionTime=_completion_time(obs, state),
        restarts=_restarts(obs),
        suspensions=suspensions,
        checkpoints=previous.checkpoints,
        result=previous.result,
    )
    summary = draft.summary
    if summary is not None:
        status.progress = _final_progress(previous.progress, summary, obs.now)
        status.checkpoints = checkpoints_of(summary) or previous.checkpoints
        # A preempted pod is often deleted before its replacement exists, so no pod is
        # left to count; the trainer counts its resumes in the checkpoint store itself,
        # including the ones after a user's suspend, which are not restarts.
        status.restarts = max(status.restarts, summary.resumes - suspensions)
        if state == "Succeeded":
            status.result = result_of(summary)
    return status


Severity = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Transition:
    """A change worth a Kubernetes Event: the state or its headline reason moved."""

    type: Severity
    reason: str
    message: str


_HEADLINE: dict[State, ConditionType] = {
    "Invalid": "Accepted",
    "Pending": "Queued",
    "Queued": "Queued",
    "Running": "Running",
    "Suspended": "Suspended",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}
_WARNING_REASONS = frozenset({INVALID_SPEC, POLICY_REASON, "Unschedulable", *STUCK_REASONS})
#: Steps every job passes through within seconds (Job created, pods being placed).
_TRANSIENT_REASONS = frozenset(
    {"Creating", "Pending", "Scheduled", "Starting", "Finishing", "Failing"}
)


def headline(status: FineTuneJobStatus) -> Condition | None:
    """The condition that explains the current state."""
    if status.state is None:
        return None
    by_type = {c.type: c for c in status.conditions}
    kind = _HEADLINE[status.state]
    if status.state == "Pending" and by_type.get("Queued") and by_type["Queued"].status == "False":
        kind = "Running"  # scheduled but not running: Running's reason says why
    return by_type.get(kind)


def in_transit(status: FineTuneJobStatus) -> bool:
    """Whether the job is in a step every job passes through within seconds (see
    :data:`_TRANSIENT_REASONS`): such a step gets no event, and its status write may
    wait for the next step (:mod:`kubetune.controller.pacing`)."""
    explained = headline(status)
    return explained is not None and explained.reason in _TRANSIENT_REASONS


def transition(previous: FineTuneJobStatus, current: FineTuneJobStatus) -> Transition | None:
    """The event for going from ``previous`` to ``current``, ``None`` if nothing moved."""
    new = headline(current)
    if new is None:
        return None
    old = headline(previous)
    if old is not None and (previous.state, old.reason) == (current.state, new.reason):
        return None
    if in_transit(current):
        return None  # the next state says what happened; an event each would be noise
    warning = current.state == "Failed" or new.reason in _WARNING_REASONS
    message = f"{current.state}: {new.message}" if new.message else str(current.state)
    return Transition("Warning" if warning else "Normal", new.reason, message[:1024])
