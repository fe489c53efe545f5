"""A queued Job's status copies Kueue's own explanation from its Workload (pure)."""

from __future__ import annotations

from typing import Any

from kubetune.controller.status import Observation, derive_status
from kubetune.controller.views import WorkloadView
from kubetune_contract.api.status import FineTuneJobStatus
from tests.unit.test_status_derive import T0, job, spec

QUEUED = {"scheduling": {"queueName": "gpu-team"}, "resources": {"gpus": 8}}
NO_QUOTA = (
    "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu "
    "in flavor h100, 8 more needed"
)


def workload(*conditions: dict[str, str]) -> WorkloadView | None:
    return WorkloadView.from_manifest({"status": {"conditions": list(conditions)}})


def queued(view: WorkloadView | None, patch: dict[str, Any] | None = None) -> tuple[str, str]:
    status = derive_status(
        Observation(
            generation=1,
            spec=spec({**QUEUED, **(patch or {})}),
            problems=(),
            batch_job=job(suspend=True),
            pods=[],
            previous=FineTuneJobStatus(),
            now=T0,
            workload=view,
        )
    )
    condition = next(c for c in status.conditions if c.type == "Queued")
    assert status.state == ("Suspended" if patch else "Queued")
    return condition.reason, condition.message


def test_waiting_for_quota_shows_kueues_message() -> None:
    view = workload(
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": NO_QUOTA}
    )
    assert queued(view) == ("WaitingForAdmission", f"Kueue (gpu-team): {NO_QUOTA}")


def test_an_inadmissible_workload_keeps_kueues_reason() -> None:
    view = workload(
        {
            "type": "QuotaReserved",
            "status": "False",
            "reason": "Inadmissible",
            "message": "LocalQueue gpu-team doesn't exist",
        }
    )
    assert queued(view) == ("Inadmissible", "Kueue (gpu-team): LocalQueue gpu-team doesn't exist")


def test_a_preempted_workload_says_so_and_what_it_waits_for_now() -> None:
    preempted = (
        "Preempted to accommodate a workload (UID: 42) due to prioritization in the ClusterQueue"
    )
    view = workload(
        {"type": "Evicted", "status": "True", "reason": "Preempted", "message": preempted},
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": NO_QUOTA},
    )
    assert view is not None and view.evicted
    assert queued(view) == ("Preempted", f"Kueue (gpu-team): {preempted}; {NO_QUOTA}")


def test_without_a_word_from_kueue_the_wait_is_named_generically() -> None:
    assert workload() is None
    admitted = {"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved", "message": ""}
    assert workload(admitted) is None
    assert queued(None) == ("WaitingForAdmission", "waiting for Kueue to admit it (gpu-team)")


def test_a_users_suspend_is_not_a_kueue_wait() -> None:
    view = workload(
        {"type": "QuotaReserved", "status": "False", "reason": "Pending", "message": NO_QUOTA}
    )
    reason, _ = queued(view, {"suspend": True})
    assert reason == "Suspended"
