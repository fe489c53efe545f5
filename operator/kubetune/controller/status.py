"""FineTuneJob status from the observed world: a pure function, recomputed every time.

Level-based: the conditions are derived from the Job and pods as they are now, not from
a count of events, so a missed or repeated event, or an operator restart, changes
nothing. The previous status is consulted only for what the world forgets:
``lastTransitionTime`` (kept while a condition's status is unchanged), ``startTime``,
``completionTime``, the monotonic ``restarts`` count (pods are deleted after they
end), the last progress, and the terminal outcome once the Job is deleted by its TTL.

``EvaluationPassed`` exists only for jobs with ``spec.evaluation``: Unknown until the
trainer ends, then what its summary says (the gate's verdict, or why the evaluation
failed). A failed gate or evaluation leaves the job ``Succeeded``: training did.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from kubetune.controller.summary import checkpoints_of, parse_summary, result_of
from kubetune.controller.views import JobView, PodView, WorkloadView
from kubetune.render.pod import CONTAINER_NAME
from kubetune_contract import exit_codes
from kubetune_contract.api.policy import POLICY_REASON
from kubetune_contract.api.schema_version import CRD_OUTDATED
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.status import (
    CONDITION_TYPES,
    FINISHED_STATES,
    LIFECYCLE_CONDITION_TYPES,
    Condition,
    ConditionStatus,
    ConditionType,
    FineTuneJobStatus,
    Progress,
    State,
)
from kubetune_contract.termination import Summary

#: Container waiting reasons of an image that cannot be had.
IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
)
#: Container waiting reasons that need the user (a wrong image, a missing Secret).
STUCK_REASONS = IMAGE_REASONS | {"CreateContainerConfigError", "CreateContainerError"}
#: Failed reasons the operator decides itself when a pod stays stuck past the start
#: timeout (the Job has not failed: the controller then deletes it, so no pod waits on).
GAVE_UP_REASONS = frozenset({"ImageUnavailable", "ContainerNotStarting"})
#: The reason while a pod evicted from an unreachable node waits to be confirmed gone.
NODE_LOST = "NodeLost"
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
    batch_job: JobView | None
    pods: Sequence[PodView]
    previous: FineTuneJobStatus
    now: datetime
    start_timeout: float | None = None
    """Seconds a trainer container may wait in a stuck reason (:data:`STUCK_REASONS`)
    before the job fails; ``None``: wait for ever."""
    reason: str = INVALID_SPEC
    """``Accepted=False`` reason when ``spec`` is ``None``: invalid, refused by policy, or
    held for an outdated CRD (:data:`_NOT_STARTED_BECAUSE`)."""
    workload: WorkloadView | None = None
    """Kueue's account of a queued Job's wait (read only while the Job is queued)."""


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
    if obs.batch_job is None:
        return []
    return [pod for pod in obs.pods if pod.job_uid == obs.batch_job.uid]


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


#: Container ``terminated`` reasons of a trainer that never ran: the runtime could
#: not start the container's process (no such program in the image, a bad mount, ...).
_NOT_STARTED = frozenset({"StartError", "ContainerCannotRun"})


def _container_fault(pods: Sequence[PodView], spec: FineTuneJobSpec) -> Verdict | None:
    """Why the newest failed trainer container ended, when the trainer itself could not
    say: the kernel OOM-killed it, or the runtime never started it. ``None`` otherwise.

    Neither leaves a summary of the trainer's own; the container's terminated reason is
    the only account. An OOM kill hit ``spec.resources.memory`` (or, without one, the
    node's memory); a start error is the runtime's message about the image or command.
    """
    pod = _last_ended(pods, "Failed")
    ended = pod.terminated if pod is not None else None
    if pod is None or ended is None:
        return None
    container = f"container {CONTAINER_NAME} of pod {pod.name}"
    if ended.reason == "OOMKilled":
        memory = spec.resources.memory
        limit = (
            f"its memory limit, spec.resources.memory ({memory}); raise spec.resources.memory"
            if memory
            else "the node had free (spec.resources.memory is unset); set "
            "spec.resources.memory to what the job needs so that it is scheduled where "
            "that much is free"
        )
        return Verdict(
            "True",
            "OOMKilled",
            f"{container} was OOM-killed (exit {ended.exit_code}): the trainer needed more "
            f"memory than {limit}",
        )
    if ended.reason in _NOT_STARTED:
        return Verdict(
            "True",
            "ContainerCannotStart",
            f"{container} could not start (exit {ended.exit_code}): {ended.message.strip()}; "
            f"check spec.image ({pod.image})",
        )
    return None


#: The lifecycle conditions' message of a job not accepted, by ``Accepted`` reason.
_NOT_STARTED_BECAUSE = {
    INVALID_SPEC: "the spec is invalid",
    POLICY_REASON: "the policy refuses it",
    CRD_OUTDATED: "the installed FineTuneJob CRD is older than the operator",
}


def _invalid(draft: _Draft, obs: Observation) -> None:
    problems = "; ".join(obs.problems)
    draft.set("Accepted", "False", obs.reason, problems)
    why = _NOT_STARTED_BECAUSE[obs.reason]
    for kind in LIFECYCLE_CONDITION_TYPES[1:]:
        draft.set(kind, "False", obs.reason, f"not started: {why}")


def _evaluated(summary: Summary | None) -> Verdict:
    """``EvaluationPassed`` of a job whose trainer succeeded."""
    found = summary.evaluation if summary is not None else {}
    if not isinstance(found, dict) or not found:
        return Verdict("Unknown", "NotReported", "the trainer reported no evaluation result")
    if found.get("error"):
        return Verdict("False", "EvaluationFailed", f"the evaluation failed: {found['error']}")
    headline = str(found.get("headline", ""))
    gate = found.get("gate")
    if not isinstance(gate, dict):
        return Verdict("True", "Evaluated", headline)
    if gate.get("passed"):
        return Verdict("True", "GatePassed", f"{headline}; gate passed")
    failures = "; ".join(str(f) for f in gate.get("failures") or [])
    return Verdict("False", "GateFailed", f"{headline}; gate failed: {failures}")


def _unread_summary(spec: FineTuneJobSpec, previous: FineTuneJobStatus) -> str:
    """The Succeeded message of a Job whose trainer summary cannot be read (now).

    A pod deleted just as it ends (an eviction or a drain that came after the last step)
    while the operator is down is gone before anyone reads its termination message; the
    Job controller still counted its success. What the summary held is in the output
    store. A summary read on an earlier pass keeps its message.
    """
    before = next((c for c in previous.conditions if c.type == "Succeeded"), None)
    if before is not None and before.status == "True" and previous.result is not None:
        return before.message
    return (
        "training finished; its pod was deleted before the operator read the trainer's "
        "summary, so status.result and the final progress are missing: the adapter and "
        f"manifest.json are under spec.output.uri ({spec.output.uri})"
    )


def _succeeded(
    draft: _Draft, spec: FineTuneJobSpec, pods: Sequence[PodView], previous: FineTuneJobStatus
) -> None:
    summary, _ = _last_summary(pods, "Succeeded")
    draft.summary = summary
    message = _unread_summary(spec, previous)
    if summary is not None:
        adapter = (summary.result or {}).get("adapterUri")
        message = f"training finished at step {summary.step}" + (
            f"; adapter at {adapter}" if adapter else ""
        )
    if spec.evaluation is not None:
        evaluated = _evaluated(summary)
        draft.verdicts["EvaluationPassed"] = evaluated
        message += f"; evaluation: {evaluated.message}"
    draft.set("Succeeded", "True", "Succeeded", message)
    draft.set("Failed", "False", "Succeeded")
    for kind in ("Queued", "Running", "Suspended"):
        draft.set(kind, "False", "Finished", "the job has finished")


def _failed(
    draft: _Draft, batch_job: JobView, pods: Sequence[PodView], spec: FineTuneJobSpec
) -> None:
    job_failure = batch_job.failure
    job_reason = job_failure.reason if job_failure else "Failed"
    job_message = job_failure.message if job_failure else ""
    summary, raw = _last_summary(pods, "Failed")
    draft.summary = summary
    fault = _container_fault(pods, spec)
    if job_reason in _JOB_DECIDED:
        reason, message = job_reason, job_message
    elif fault is not None:
        reason = fault.reason
        message = fault.message + (f" ({job_reason}: {job_message})" if job_message else "")
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
    # A pod the node lifecycle controller evicted from a node that stopped reporting.
    lost = [p for p in pods if p.deleting and p.disruption.startswith("DeletionByTaintManager")]
    lost_note = (
        f"pod {lost[0].name} was evicted from its unreachable node ({lost[0].disruption}); "
        if lost
        else ""
    )
    unreachable = [p for p in running if p.node_lost]
    if len(running) >= nodes and unreachable:
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set(
            "Running",
            "True",
            "NodeNotReady",
            f"pod {unreachable[0].name} is not ready: its node stopped reporting; it is "
            "replaced (and resumes from the newest checkpoint) if the node stays away",
        )
    elif len(running) >= nodes:
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set("Running", "True", "Running", f"{len(running)}/{nodes} node(s) training")
    elif unschedulable:
        scheduler = unschedulable[0].scheduled.message if unschedulable[0].scheduled else ""
        draft.set("Queued", "True", "Unschedulable", lost_note + scheduler)
        draft.set("Running", "False", "Unschedulable", lost_note + scheduler)
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
        fault = _container_fault(pods, spec)
        evicted = _last_ended(pods, "Failed")
        why = (
            f"{fault.reason}: {fault.message}"
            if fault
            else f"{summary.reason}: {summary.message}"
            if summary
            else raw or "pod failed"
        )
        if evicted is not None and evicted.pod_reason == "Evicted":
            why = f"the kubelet evicted {evicted.name} ({evicted.pod_message}); {why}"
        if summary is not None and summary.exitCode in exit_codes.NON_RETRIABLE:
            # podFailurePolicy fails the Job for this exit code; its condition follows
            draft.set("Queued", "False", "Scheduled", "every pod is on a node")
            draft.set("Running", "False", "Failing", why)
        else:
            draft.set("Queued", "True", "Restarting", f"the trainer exited ({why}); retrying")
            draft.set("Running", "False", "Restarting", why)
    elif lost and not live:
        # The Job replaces a pod once it is terminal, and only its kubelet can say so:
        # the pod stays Terminating until the node returns (or is removed).
        why = (
            f"{lost_note}the Job replaces it once its node returns or is removed "
            "(until then nothing can confirm the pod stopped)"
        )
        draft.set("Queued", "True", NODE_LOST, why)
        draft.set("Running", "False", NODE_LOST, why)
    elif unscheduled or not live:
        draft.set("Queued", "True", "Pending", "waiting for the pods to be created and scheduled")
        draft.set("Running", "False", "Pending", f"{len(running)}/{nodes} node(s) training")
    else:
        draft.set("Queued", "False", "Scheduled", "every pod is on a node")
        draft.set("Running", "False", "Starting", f"{len(running)}/{nodes} node(s) training")


def _stuck_too_long(pods: Sequence[PodView], obs: Observation) -> PodView | None:
    """A live pod whose container has waited in a stuck reason longer than the start
    timeout (counted from the pod's start on its node), if any."""
    if obs.start_timeout is None:
        return None
    for pod in pods:
        since = pod.started or pod.created
        if (
            not pod.deleting
            and pod.phase == "Pending"
            and pod.waiting_reason in STUCK_REASONS
            and since is not None
            and (obs.now - since).total_seconds() > obs.start_timeout
        ):
            return pod
    return None


def _gave_up(draft: _Draft, pod: PodView, timeout: float) -> None:
    """Fail the job for a pod that never got its container started."""
    waited = f"for {timeout:.0f}s ({pod.waiting_reason}: {pod.waiting_message})"
    if pod.waiting_reason in IMAGE_REASONS:
        reason = "ImageUnavailable"
        message = (
            f"image {pod.image} of pod {pod.name} could not be had {waited}; check spec.image "
            "(or the operator's trainer image) and the node's access to its registry"
        )
    else:
        reason = "ContainerNotStarting"
        message = (
            f"container {CONTAINER_NAME} of pod {pod.name} did not start {waited}; check the "
            "Secrets and ConfigMaps the job names (credentialsSecret, spec.env)"
        )
    draft.set("Failed", "True", reason, message)
    draft.set("Succeeded", "False", "Failed")
    for kind in ("Queued", "Running", "Suspended"):
        draft.set(kind, "False", "Finished", "the job has finished")


def gave_up(status: FineTuneJobStatus) -> bool:
    """Whether the operator failed the job itself (its Job is to be deleted)."""
    return any(
        c.type == "Failed" and c.status == "True" and c.reason in GAVE_UP_REASONS
        for c in status.conditions
    )


#: Kueue's reason for a Workload waiting for quota, which is every queued job's
#: normal state: the Queued condition keeps its own name for it.
_KUEUE_PENDING = "Pending"


def _kueue_wait(workload: WorkloadView | None, queue: str) -> tuple[str, str]:
    """The Queued condition's reason and message for a Job Kueue has not admitted:
    Kueue's own (an eviction's reason such as ``Preempted``, ``Inadmissible`` for a
    queue that cannot admit it, the quota it lacks), copied from its Workload."""
    if workload is None:
        return "WaitingForAdmission", f"waiting for Kueue to admit it ({queue})"
    reason = workload.reason if workload.reason != _KUEUE_PENDING else "WaitingForAdmission"
    return reason or "WaitingForAdmission", f"Kueue ({queue}): {workload.message}"


def _lifecycle(draft: _Draft, obs: Observation, spec: FineTuneJobSpec) -> None:
    batch_job = obs.batch_job
    pods = _own_pods(obs)
    queue = spec.scheduling.queueName if spec.scheduling else None
    if batch_job is not None and batch_job.success:
        _succeeded(draft, spec, pods, obs.previous)
        return
    if batch_job is not None and batch_job.failure:
        _failed(draft, batch_job, pods, spec)
        if spec.evaluation is not None:
            draft.set("EvaluationPassed", "False", "NotEvaluated", "training failed")
        return
    stuck = _stuck_too_long(pods, obs) if batch_job is not None and not spec.suspend else None
    if stuck is not None and obs.start_timeout is not None:
        _gave_up(draft, stuck, obs.start_timeout)
        if spec.evaluation is not None:
            draft.set("EvaluationPassed", "False", "NotEvaluated", "training never started")
        return
    _not_finished(draft)
    if spec.evaluation is not None:
        draft.set("EvaluationPassed", "Unknown", "Pending", "the evaluation runs after training")
    if spec.suspend:
        _suspended(draft, pods)
    elif batch_job is None:
        draft.set("Suspended", "False", "NotSuspended")
        draft.set("Queued", "Unknown", "Creating", "creating the Job")
        draft.set("Running", "False", "Pending")
    elif batch_job.suspended and queue:
        draft.set("Suspended", "False", "NotSuspended")
        reason, message = _kueue_wait(obs.workload, queue)
        draft.set("Queued", "True", reason, message)
        draft.set("Running", "False", "Queued", f"queued in LocalQueue {queue}")
    elif batch_job.suspended:
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
        verdict = draft.verdicts.get(kind)
        if verdict is None:  # EvaluationPassed without spec.evaluation
            continue
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


def _created(pod: PodView) -> tuple[float, str]:
    return (pod.created.timestamp() if pod.created else 0.0, pod.name)


def _replaced(obs: Observation) -> list[PodView]:
    """Trainer pods that failed or were disrupted (preempted, evicted) and were replaced,
    oldest first. Pods stopped by a user's suspend are not among them."""
    per_index: dict[int, list[PodView]] = defaultdict(list)
    for pod in _own_pods(obs):
        per_index[pod.index].append(pod)
    replaced = [
        p
        for pods in per_index.values()
        for p in sorted(pods, key=_created)[:-1]
        if p.phase == "Failed" or p.disrupted
    ]
    return sorted(replaced, key=_created)


def _restarts(obs: Observation) -> int:
    """How many trainer pods were replaced. Ended pods disappear (garbage collection, a
    re-created Job), so the count never goes below the one reported."""
    return max(obs.previous.restarts, len(_replaced(obs)))


#: The reason of the Warning event each restart of the trainer posts.
RESTARTED = "TrainerRestarted"


def restart_note(obs: Observation) -> str:
    """Why the trainer restarted, for the event a restart posts: the newest replaced pod
    and how it ended. A replacement can be running before any status write sees the
    old pod's end, so this event is the record of an eviction or a crash."""
    replaced = _replaced(obs)
    if not replaced:
        return "the trainer resumed from a checkpoint"
    pod = replaced[-1]
    if pod.pod_reason == "Evicted":
        why = f"the kubelet evicted it ({pod.pod_message})"
    elif pod.disruption:
        why = f"it was disrupted ({pod.disruption})"
    elif pod.terminated is not None:
        why = f"the trainer exited with code {pod.terminated.exit_code} ({pod.terminated.reason})"
    else:
        why = "it failed"
    return f"pod {pod.name} was replaced: {why}"


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
    if state not in FINISHED_STATES:
        return None
    if obs.previous.completionTime is not None:
        return obs.previous.completionTime
    batch_job = obs.batch_job
    if batch_job is not None and batch_job.completion_time is not None:
        return batch_job.completion_time
    failure = batch_job.failure if batch_job is not None else None
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
    return status.state in FINISHED_STATES


def derive_status(obs: Observation) -> FineTuneJobStatus:
    """The FineTuneJob status for what is observed in ``obs``."""
    previous = obs.previous
    if (
        obs.spec is not None
        and _is_terminal(previous)
        and (obs.batch_job is None or gave_up(previous))
    ):
        # The Job went with its TTL, or goes because the operator failed the job: the
        # outcome is history only the status keeps.
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
_WARNING_REASONS = frozenset(
    {INVALID_SPEC, POLICY_REASON, CRD_OUTDATED, "Unschedulable", NODE_LOST, *STUCK_REASONS}
)
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
    evaluation = next((c for c in current.conditions if c.type == "EvaluationPassed"), None)
    # A Succeeded job whose adapter must not be promoted deserves the same attention.
    gated_out = evaluation is not None and evaluation.status == "False"
    warning = current.state == "Failed" or new.reason in _WARNING_REASONS or gated_out
    message = f"{current.state}: {new.message}" if new.message else str(current.state)
    return Transition("Warning" if warning else "Normal", new.reason, message[:1024])
