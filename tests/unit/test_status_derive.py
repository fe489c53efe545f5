"""derive_status: conditions, state, times, restarts, result and events from the world."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubetune.controller.status import (
    Observation,
    derive_status,
    gave_up,
    restart_note,
    state_of,
    transition,
)
from kubetune.controller.views import JobView, PodView
from kubetune_contract.api import parse_finetunejob
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.status import FineTuneJobStatus, Progress
from tests.cases.manifests import merge, valid_manifest

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB_UID = "job-uid-1"


def spec(patch: dict[str, Any] | None = None) -> FineTuneJobSpec:
    return parse_finetunejob(merge(valid_manifest(), {"spec": patch or {}})).spec


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(
    *,
    suspend: bool = False,
    active: int = 0,
    conditions: list[dict[str, str]] | None = None,
    uid: str = JOB_UID,
) -> JobView:
    return JobView.from_manifest(
        {
            "metadata": {"name": "demo", "uid": uid, "annotations": {}},
            "spec": {"suspend": suspend},
            "status": {
                "active": active,
                "conditions": [
                    {"status": "True", "lastTransitionTime": stamp(T0), **c}
                    for c in conditions or []
                ],
                **({"completionTime": stamp(T0 + timedelta(hours=1))} if conditions else {}),
            },
        }
    )


def pod(
    name: str = "demo-abc",
    *,
    phase: str = "Running",
    index: int = 0,
    scheduled: dict[str, str] | None = None,
    terminated: dict[str, Any] | None = None,
    waiting: dict[str, str] | None = None,
    deleting: bool = False,
    job_uid: str = JOB_UID,
    started: datetime | None = T0,
) -> PodView:
    state: dict[str, Any] = {}
    if terminated is not None:
        state["terminated"] = {"finishedAt": stamp(T0 + timedelta(hours=1)), **terminated}
    if waiting is not None:
        state["waiting"] = waiting
    meta: dict[str, Any] = {
        "name": name,
        "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        "ownerReferences": [{"kind": "Job", "uid": job_uid, "controller": True}],
        "creationTimestamp": stamp(T0),
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(T0)
    return PodView.from_manifest(
        {
            "metadata": meta,
            "status": {
                "phase": phase,
                "podIP": "10.244.0.5",
                **({"startTime": stamp(started)} if started else {}),
                "conditions": [
                    {"type": "PodScheduled", "status": "True", **(scheduled or {})},
                ],
                "containerStatuses": [{"name": "trainer", "state": state}] if state else [],
            },
        }
    )


def observe(
    job_view: JobView | None = None,
    pods: list[PodView] | None = None,
    *,
    the_spec: FineTuneJobSpec | None = None,
    previous: FineTuneJobStatus | None = None,
    problems: tuple[str, ...] = (),
    at: datetime = T0,
    invalid: bool = False,
) -> FineTuneJobStatus:
    return derive_status(
        Observation(
            generation=3,
            spec=None if invalid else (the_spec or spec()),
            problems=problems,
            batch_job=job_view,
            pods=pods or [],
            previous=previous or FineTuneJobStatus(),
            now=at,
        )
    )


def conditions(status: FineTuneJobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def message(status: FineTuneJobStatus, kind: str) -> str:
    return next(c.message for c in status.conditions if c.type == kind)


SUMMARY_OK = {
    "outcome": "Succeeded",
    "reason": "Succeeded",
    "message": "done",
    "exitCode": 0,
    "step": 200,
    "totalSteps": 200,
    "metrics": {"loss": 0.5, "evalLoss": 0.6, "epoch": 1.0},
    "result": {
        "adapterUri": "s3://models/demo/adapter",
        "manifestUri": "s3://models/demo/manifest.json",
        "mergedUri": None,
    },
    "checkpoints": [{"step": 100, "uri": "s3://models/demo/checkpoints/checkpoint-100"}],
}


def test_every_condition_is_set_on_first_visit_with_generation() -> None:
    status = observe()
    assert [c.type for c in status.conditions] == [
        "Accepted",
        "Queued",
        "Running",
        "Succeeded",
        "Failed",
        "Suspended",
    ]
    assert all(c.observedGeneration == 3 for c in status.conditions)
    assert status.observedGeneration == 3
    assert conditions(status)["Queued"] == ("Unknown", "Creating")
    assert status.state == "Pending"


def test_invalid_spec_is_not_accepted_and_names_the_problems() -> None:
    status = observe(invalid=True, problems=("spec.adapter.partial.patterns[0]: bad regex",))
    assert conditions(status)["Accepted"] == ("False", "InvalidSpec")
    assert "patterns[0]" in message(status, "Accepted")
    assert status.state == "Invalid"
    assert all(s == "False" for s, _ in conditions(status).values())


def test_job_without_pods_is_queued_pending() -> None:
    status = observe(job())
    assert conditions(status)["Queued"] == ("True", "Pending")
    assert conditions(status)["Running"] == ("False", "Pending")
    assert status.state == "Queued"


def test_unschedulable_pod_surfaces_the_scheduler_message() -> None:
    why = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    pending = pod(
        phase="Pending",
        started=None,
        scheduled={"status": "False", "reason": "Unschedulable", "message": why},
    )
    status = observe(job(active=1), [pending])
    assert conditions(status)["Queued"] == ("True", "Unschedulable")
    assert message(status, "Queued") == why
    assert conditions(status)["Running"] == ("False", "Unschedulable")
    assert status.state == "Queued"
    event = transition(FineTuneJobStatus(), status)
    assert event is not None and (event.type, event.reason) == ("Warning", "Unschedulable")
    assert why in event.message


def test_stuck_container_names_the_reason() -> None:
    stuck = pod(
        phase="Pending",
        waiting={"reason": "CreateContainerConfigError", "message": 'secret "hf" not found'},
    )
    status = observe(job(active=1), [stuck])
    assert conditions(status)["Running"] == ("False", "CreateContainerConfigError")
    assert 'secret "hf" not found' in message(status, "Running")


def _derive(
    pods: list[PodView],
    at: datetime,
    previous: FineTuneJobStatus | None = None,
    job_view: JobView | None = None,
) -> FineTuneJobStatus:
    return derive_status(
        Observation(
            generation=3,
            spec=spec(),
            problems=(),
            batch_job=job_view or job(active=1),
            pods=pods,
            previous=previous or FineTuneJobStatus(),
            now=at,
            start_timeout=300,
        )
    )


def test_an_image_that_cannot_be_pulled_fails_the_job_after_the_start_timeout() -> None:
    stuck = pod(
        phase="Pending",
        waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'},
    )
    waiting = _derive([stuck], T0 + timedelta(seconds=299))
    assert waiting.state == "Pending"
    assert conditions(waiting)["Running"] == ("False", "ImagePullBackOff")
    failed = _derive([stuck], T0 + timedelta(seconds=301), previous=waiting)
    assert failed.state == "Failed"
    assert conditions(failed)["Failed"] == ("True", "ImageUnavailable")
    assert "could not be had for 300s (ImagePullBackOff" in message(failed, "Failed")
    assert gave_up(failed)
    # The Job is then deleted; the outcome stays, with or without it.
    assert _derive([], T0 + timedelta(seconds=302), previous=failed).state == "Failed"
    gone = derive_status(
        Observation(3, spec(), (), None, [], failed, T0 + timedelta(seconds=303), 300)
    )
    assert gone.state == "Failed" and gave_up(gone)


def test_a_missing_secret_fails_as_a_container_that_never_started() -> None:
    stuck = pod(
        phase="Pending",
        waiting={"reason": "CreateContainerConfigError", "message": 'secret "hf" not found'},
    )
    failed = _derive([stuck], T0 + timedelta(seconds=301))
    assert conditions(failed)["Failed"] == ("True", "ContainerNotStarting")
    assert 'secret "hf" not found' in message(failed, "Failed")


def test_a_stuck_pod_of_a_suspended_job_or_without_a_timeout_waits() -> None:
    stuck = pod(phase="Pending", waiting={"reason": "ErrImagePull", "message": "no"})
    assert not gave_up(observe(job(active=1), [stuck], at=T0 + timedelta(days=1)))
    suspended = derive_status(
        Observation(
            3,
            spec({"suspend": True}),
            (),
            job(active=1),
            [stuck],
            FineTuneJobStatus(),
            T0 + timedelta(days=1),
            300,
        )
    )
    assert not gave_up(suspended)


def test_scheduled_pod_not_yet_running_is_starting() -> None:
    status = observe(job(active=1), [pod(phase="Pending", started=None)])
    assert conditions(status)["Queued"] == ("False", "Scheduled")
    assert conditions(status)["Running"] == ("False", "Starting")


def test_running_pod_makes_the_job_running_with_a_start_time() -> None:
    status = observe(job(active=1), [pod()], at=T0 + timedelta(minutes=5))
    assert conditions(status)["Running"] == ("True", "Running")
    assert conditions(status)["Queued"] == ("False", "Scheduled")
    assert status.state == "Running"
    assert status.startTime == T0
    assert status.completionTime is None


def test_multi_node_runs_only_when_every_node_runs() -> None:
    two = spec({"resources": {"nodes": 2, "gpus": 8}})
    why = "0/4 nodes are available"
    half = [
        pod("a", index=0),
        pod(
            "b",
            index=1,
            phase="Pending",
            scheduled={"status": "False", "reason": "Unschedulable", "message": why},
        ),
    ]
    assert conditions(observe(job(active=2), half, the_spec=two))["Queued"] == (
        "True",
        "Unschedulable",
    )
    both = [pod("a", index=0), pod("b", index=1)]
    status = observe(job(active=2), both, the_spec=two)
    assert conditions(status)["Running"] == ("True", "Running")
    assert "2/2" in message(status, "Running")


def test_pods_of_an_older_job_are_ignored() -> None:
    stale = pod(phase="Running", job_uid="old-uid")
    assert conditions(observe(job(active=0), [stale]))["Running"] == ("False", "Pending")


def test_success_reads_the_result_from_the_termination_message() -> None:
    done = pod(
        phase="Succeeded",
        terminated={"exitCode": 0, "reason": "Completed", "message": json.dumps(SUMMARY_OK)},
    )
    status = observe(job(conditions=[{"type": "Complete"}]), [done])
    assert conditions(status)["Succeeded"] == ("True", "Succeeded")
    assert conditions(status)["Running"] == ("False", "Finished")
    assert status.state == "Succeeded"
    assert status.result is not None
    assert status.result.adapterUri == "s3://models/demo/adapter"
    assert status.result.manifestUri == "s3://models/demo/manifest.json"
    assert status.result.metrics == {"loss": 0.5, "evalLoss": 0.6, "epoch": 1.0}
    assert [c.step for c in status.checkpoints] == [100]
    assert status.progress is not None
    assert (status.progress.step, status.progress.percent, status.progress.etaSeconds) == (
        200,
        100,
        0,
    )
    assert status.completionTime == T0 + timedelta(hours=1)
    assert "s3://models/demo/adapter" in message(status, "Succeeded")


def test_a_success_whose_pod_went_unread_points_to_the_store() -> None:
    # Evicted just after its last step while the operator was down: the Job controller
    # counted the success, but the pod and its termination message are gone.
    running = Progress(step=515, totalSteps=600, percent=85, etaSeconds=2, updatedAt=T0)
    status = observe(
        job(conditions=[{"type": "Complete"}]),
        [],
        previous=FineTuneJobStatus(progress=running),
    )
    assert status.state == "Succeeded"
    assert status.result is None
    assert status.progress == running  # the last one read, not made up
    said = message(status, "Succeeded")
    assert "deleted before the operator read the trainer's summary" in said
    assert valid_manifest()["spec"]["output"]["uri"] in said


def test_a_summary_read_before_its_pod_went_keeps_its_message() -> None:
    done = pod(
        phase="Succeeded",
        terminated={"exitCode": 0, "reason": "Completed", "message": json.dumps(SUMMARY_OK)},
    )
    complete = job(conditions=[{"type": "Complete"}])
    read = observe(complete, [done])
    later = observe(complete, [], previous=read)
    assert message(later, "Succeeded") == message(read, "Succeeded")
    assert later.result == read.result
    assert later.progress == read.progress


def ended_trainer(outcome: str, reason: str, message: str, exit_code: int) -> PodView:
    """A pod whose trainer exited and left its summary as termination message."""
    summary = {"outcome": outcome, "reason": reason, "message": message, "exitCode": exit_code}
    return pod(
        phase="Failed",
        terminated={"exitCode": exit_code, "reason": "Error", "message": json.dumps(summary)},
    )


def test_trainer_failure_reason_reaches_the_failed_condition() -> None:
    failed = ended_trainer("Failed", "InvalidData", "train.jsonl line 3: missing 'messages'", 3)
    failure = {"type": "Failed", "reason": "PodFailurePolicy", "message": "exit code 3"}
    status = observe(job(conditions=[failure]), [failed])
    assert conditions(status)["Failed"] == ("True", "InvalidData")
    assert "line 3" in message(status, "Failed")
    assert status.state == "Failed"
    assert status.result is None
    event = transition(FineTuneJobStatus(), status)
    assert event is not None and (event.type, event.reason) == ("Warning", "InvalidData")


def test_failure_without_a_summary_uses_the_job_reason_and_the_log_tail() -> None:
    crashed = pod(
        phase="Failed",
        terminated={"exitCode": 1, "reason": "Error", "message": "Traceback: ImportError"},
    )
    failure = {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "too many"}
    status = observe(job(conditions=[failure]), [crashed])
    assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
    assert "ImportError" in message(status, "Failed")


def _oom_killed_pod(name: str = "demo-abc") -> PodView:
    return pod(
        name,
        phase="Failed",
        terminated={"exitCode": 137, "reason": "OOMKilled", "message": "step 3 loss 4.1"},
    )


def test_oom_kill_fails_naming_the_container_and_the_memory_limit() -> None:
    failure = {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "too many"}
    status = observe(
        job(conditions=[failure]),
        [_oom_killed_pod()],
        the_spec=spec({"resources": {"memory": "600Mi"}}),
    )
    assert conditions(status)["Failed"] == ("True", "OOMKilled")
    text = message(status, "Failed")
    assert "container trainer of pod demo-abc was OOM-killed (exit 137)" in text
    assert "spec.resources.memory (600Mi)" in text
    event = transition(FineTuneJobStatus(), status)
    assert event is not None and (event.type, event.reason) == ("Warning", "OOMKilled")


def test_oom_kill_without_a_limit_says_to_set_one() -> None:
    failure = {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "too many"}
    status = observe(job(conditions=[failure]), [_oom_killed_pod()])
    assert "spec.resources.memory is unset" in message(status, "Failed")


def test_oom_killed_pod_being_retried_says_so() -> None:
    status = observe(job(active=0), [_oom_killed_pod()])
    assert conditions(status)["Running"] == ("False", "Restarting")
    assert "OOMKilled: container trainer of pod demo-abc" in message(status, "Running")


def test_a_container_the_runtime_could_not_start_fails_with_its_message() -> None:
    never = pod(
        phase="Failed",
        terminated={
            "exitCode": 128,
            "reason": "StartError",
            "message": 'exec: "python": executable file not found in $PATH',
        },
    )
    failure = {"type": "Failed", "reason": "BackoffLimitExceeded", "message": "too many"}
    status = observe(job(conditions=[failure]), [never])
    assert conditions(status)["Failed"] == ("True", "ContainerCannotStart")
    assert 'could not start (exit 128): exec: "python"' in message(status, "Failed")


def test_a_pod_the_kubelet_evicted_is_retried_saying_why() -> None:
    evicted = PodView.from_manifest(
        {
            "metadata": {
                "name": "demo-abc",
                "ownerReferences": [{"kind": "Job", "uid": JOB_UID, "controller": True}],
            },
            "status": {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory.",
                "containerStatuses": [
                    {"name": "trainer", "state": {"terminated": {"exitCode": 5}}}
                ],
            },
        }
    )
    status = observe(job(active=0), [evicted])
    assert conditions(status)["Running"] == ("False", "Restarting")
    assert "the kubelet evicted demo-abc (The node was low on resource: memory.)" in message(
        status, "Running"
    )


def _pod_with(conditions: list[dict[str, str]], **meta: Any) -> PodView:
    return PodView.from_manifest(
        {
            "metadata": {
                "name": meta.get("name", "demo-abc"),
                "ownerReferences": [{"kind": "Job", "uid": JOB_UID, "controller": True}],
                **({"deletionTimestamp": stamp(T0)} if meta.get("deleting") else {}),
            },
            "status": {
                "phase": meta.get("phase", "Running"),
                "conditions": [{"type": "PodScheduled", "status": "True"}, *conditions],
            },
        }
    )


def test_a_pod_whose_node_stopped_reporting_is_named() -> None:
    # The node lifecycle controller sets Ready False without a reason.
    lost = _pod_with([{"type": "Ready", "status": "False"}])
    status = observe(job(active=1), [lost])
    assert conditions(status)["Running"] == ("True", "NodeNotReady")
    assert "its node stopped reporting" in message(status, "Running")
    # The kubelet's own "not ready" always has a reason: a finishing container is no alarm.
    done = _pod_with([{"type": "Ready", "status": "False", "reason": "PodCompleted"}])
    assert conditions(observe(job(active=1), [done]))["Running"] == ("True", "Running")


def test_a_pod_evicted_from_an_unreachable_node_explains_the_wait() -> None:
    evicted = _pod_with(
        [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
            }
        ],
        name="demo-old",
        deleting=True,
    )
    replacement = pod(
        "demo-new",
        phase="Pending",
        scheduled={"status": "False", "reason": "Unschedulable", "message": "0/1 nodes: taint"},
        started=None,
    )
    status = observe(job(active=1), [evicted, replacement])
    assert conditions(status)["Queued"] == ("True", "Unschedulable")
    assert message(status, "Queued").startswith(
        "pod demo-old was evicted from its unreachable node (DeletionByTaintManager: "
    )


def test_a_pod_evicted_from_an_unreachable_node_and_not_yet_replaced_says_why() -> None:
    evicted = _pod_with(
        [
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
            }
        ],
        name="demo-old",
        deleting=True,
    )
    status = observe(job(active=1), [evicted])
    assert conditions(status)["Queued"] == ("True", "NodeLost")
    assert conditions(status)["Running"] == ("False", "NodeLost")
    said = message(status, "Queued")
    assert said.startswith("pod demo-old was evicted from its unreachable node")
    assert "replaces it once its node returns or is removed" in said


def test_deadline_beats_the_trainers_interrupted_summary() -> None:
    stopped = ended_trainer("Interrupted", "Interrupted", "SIGTERM", 5)
    failure = {"type": "Failed", "reason": "DeadlineExceeded", "message": "active deadline"}
    status = observe(job(conditions=[failure]), [stopped])
    assert conditions(status)["Failed"] == ("True", "DeadlineExceeded")


def test_user_suspend_reports_stopping_then_suspended() -> None:
    suspended = spec({"suspend": True})
    stopping = observe(job(suspend=True, active=1), [pod(deleting=True)], the_spec=suspended)
    assert conditions(stopping)["Suspended"] == ("True", "Suspended")
    assert "checkpoint" in message(stopping, "Suspended")
    assert stopping.state == "Suspended"
    stopped = observe(job(suspend=True), [], the_spec=suspended)
    assert "resume" in message(stopped, "Suspended")
    assert conditions(stopped)["Running"] == ("False", "Suspended")


def test_kueue_job_waits_for_admission() -> None:
    queued = spec({"scheduling": {"queueName": "team-a"}})
    status = observe(job(suspend=True), [], the_spec=queued)
    assert conditions(status)["Queued"] == ("True", "WaitingForAdmission")
    assert "team-a" in message(status, "Queued")
    assert conditions(status)["Suspended"] == ("False", "NotSuspended")
    admitted = observe(job(suspend=False, active=1), [pod()], the_spec=queued)
    assert admitted.state == "Running"


def test_transition_time_changes_only_when_the_status_changes() -> None:
    first = observe(job(active=1), [pod(phase="Pending", started=None)], at=T0)
    later = T0 + timedelta(minutes=1)
    same = observe(job(active=1), [pod(phase="Pending", started=None)], previous=first, at=later)
    assert same == first, "nothing changed: the status must be identical (no write)"
    running = observe(job(active=1), [pod()], previous=first, at=later)
    times = {c.type: c.lastTransitionTime for c in running.conditions}
    assert times["Running"] == later
    assert times["Accepted"] == T0


def test_restarts_count_replacement_pods_and_never_decrease() -> None:
    pods = [
        pod("a", phase="Failed", terminated={"exitCode": 1}),
        pod("b", phase="Failed", terminated={"exitCode": 5}),
        pod("c"),
    ]
    status = observe(job(active=1), pods)
    assert status.restarts == 2
    later = observe(job(active=1), [pod("c")], previous=status)
    assert later.restarts == 2


def test_the_restart_note_names_the_newest_replaced_pod_and_how_it_ended() -> None:
    def note(pods: list[PodView]) -> str:
        return restart_note(
            Observation(
                generation=3,
                spec=spec(),
                problems=(),
                batch_job=job(active=1),
                pods=pods,
                previous=FineTuneJobStatus(),
                now=T0,
            )
        )

    oom = pod("a", phase="Failed", terminated={"exitCode": 137, "reason": "OOMKilled"})
    assert note([oom, pod("b")]) == (
        "pod a was replaced: the trainer exited with code 137 (OOMKilled)"
    )
    preempted = _pod_with(
        [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}],
        name="a",
        phase="Failed",
    )
    assert note([preempted, pod("b")]).startswith(
        "pod a was replaced: it was disrupted (PreemptionByScheduler"
    )
    # The trainer counted a resume the pods no longer show (they were collected).
    assert note([pod("b")]) == "the trainer resumed from a checkpoint"


def test_terminal_status_survives_the_job_ttl() -> None:
    done = pod(
        phase="Succeeded",
        terminated={"exitCode": 0, "message": json.dumps(SUMMARY_OK)},
    )
    finished = observe(job(conditions=[{"type": "Complete"}]), [done])
    after_ttl = observe(None, [], previous=finished)
    assert after_ttl == finished


def test_progress_is_kept_while_running() -> None:
    previous = observe(job(active=1), [pod()])
    previous.progress = Progress(step=10, totalSteps=100, updatedAt=T0)
    status = observe(job(active=1), [pod()], previous=previous)
    assert status.progress == previous.progress


@pytest.mark.parametrize(
    ("trues", "state"),
    [
        ((), "Pending"),
        (("Queued",), "Queued"),
        (("Running",), "Running"),
        (("Suspended", "Running"), "Suspended"),
        (("Succeeded",), "Succeeded"),
        (("Failed", "Succeeded"), "Failed"),
    ],
)
def test_state_follows_lifecycle_order(trues: tuple[str, ...], state: str) -> None:
    status = observe(job(active=1), [pod()])
    for condition in status.conditions:
        condition.status = "True" if condition.type in (*trues, "Accepted") else "False"
    assert state_of(status.conditions) == state


def test_no_event_when_neither_state_nor_reason_moves() -> None:
    first = observe(job(active=1), [pod()])
    assert transition(first, observe(job(active=1), [pod()], previous=first)) is None
    event = transition(FineTuneJobStatus(), first)
    assert event is not None and (event.type, event.reason) == ("Normal", "Running")


def test_success_criteria_and_failure_target_are_terminal_before_the_final_condition() -> None:
    done = pod(phase="Succeeded", terminated={"exitCode": 0, "message": json.dumps(SUMMARY_OK)})
    assert observe(job(conditions=[{"type": "SuccessCriteriaMet"}]), [done]).state == "Succeeded"
    target = {"type": "FailureTarget", "reason": "BackoffLimitExceeded", "message": "x"}
    assert observe(job(conditions=[target]), []).state == "Failed"


def test_between_pod_exit_and_job_condition_the_state_holds() -> None:
    done = pod(phase="Succeeded", terminated={"exitCode": 0, "message": "{}"})
    status = observe(job(), [done])
    assert (status.state, conditions(status)["Running"]) == ("Running", ("True", "Finishing"))
    crashed = ended_trainer("Failed", "InfrastructureError", "S3 503", 4)
    retrying = observe(job(), [crashed])
    assert conditions(retrying)["Queued"] == ("True", "Restarting")
    assert "S3 503" in message(retrying, "Running")
    invalid = ended_trainer("Failed", "InvalidConfig", "bad", 3)
    failing = observe(job(), [invalid])
    assert conditions(failing)["Running"] == ("False", "Failing"), "exit 3 is never retried"
    assert transition(retrying, failing) is None


def test_transient_pending_states_post_no_event_but_stuck_ones_warn() -> None:
    assert transition(FineTuneJobStatus(), observe(job())) is None
    stuck = pod(phase="Pending", waiting={"reason": "ErrImagePull", "message": "no such image"})
    event = transition(FineTuneJobStatus(), observe(job(active=1), [stuck]))
    assert event is not None and (event.type, event.reason) == ("Warning", "ErrImagePull")


def test_restarts_include_resumes_the_trainer_counted() -> None:
    """A preempted pod can be gone before its replacement exists: no pod is left to count,
    but the resumed trainer reports how often it resumed from a checkpoint."""
    done = pod(
        phase="Succeeded",
        terminated={
            "exitCode": 0,
            "reason": "Completed",
            "message": json.dumps({**SUMMARY_OK, "resumes": 1}),
        },
    )
    status = observe(job(conditions=[{"type": "Complete"}]), [done])
    assert status.restarts == 1


def test_resumes_after_a_users_suspend_are_not_restarts() -> None:
    running = observe(job(active=1), [pod()])
    assert running.startTime is not None and running.suspensions == 0
    suspended = spec({"suspend": True})
    stopped = observe(job(suspend=True), [], the_spec=suspended, previous=running)
    assert stopped.suspensions == 1
    again = observe(job(suspend=True), [], the_spec=suspended, previous=stopped)
    assert again.suspensions == 1, "counted once per suspension, not per observation"
    done = pod(
        phase="Succeeded",
        terminated={
            "exitCode": 0,
            "reason": "Completed",
            "message": json.dumps({**SUMMARY_OK, "resumes": 1}),
        },
    )
    finished = observe(job(conditions=[{"type": "Complete"}]), [done], previous=again)
    assert finished.restarts == 0
