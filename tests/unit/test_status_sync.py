"""When the controller writes: Jobs already up to date, status writes paced, versions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from kubetune.controller.children import up_to_date
from kubetune.controller.kube import Kube
from kubetune.controller.login import connection_limit
from kubetune.controller.pacing import Pacing
from kubetune.controller.runtime import Runtime, Snapshot, now
from kubetune.controller.views import JobView, PodView
from kubetune.render.children import Children, render_children
from kubetune.render.options import RenderOptions
from kubetune_contract.api import FineTuneJob, parse_finetunejob
from tests.cases.manifests import merge, valid_manifest


def job(spec: dict[str, Any] | None = None) -> FineTuneJob:
    return parse_finetunejob(merge(valid_manifest("demo"), {"spec": spec or {}}))


def as_created(children: Children, **spec: Any) -> JobView:
    """The Job as the API server returns it after creation (plus spec changes)."""
    manifest = children.batch_job
    return JobView.from_manifest(
        {
            **manifest,
            "metadata": {**manifest["metadata"], "uid": "u"},
            "spec": {**manifest["spec"], **spec},
        }
    )


def test_a_job_created_from_the_same_spec_is_up_to_date() -> None:
    wanted = job()
    children = render_children(wanted, RenderOptions())
    assert up_to_date(as_created(children), children, wanted)


def test_changed_settings_config_or_template_need_work() -> None:
    old = render_children(job(), RenderOptions())
    for changed in (
        job({"backoffLimit": 9}),
        job({"suspend": True}),
        job({"training": {"learningRate": "1e-5"}}),
        job({"image": "other:1"}),
    ):
        children = render_children(changed, RenderOptions())
        assert not up_to_date(as_created(old), children, changed)


def test_kueue_owns_suspend_of_queued_jobs() -> None:
    queued = job({"scheduling": {"queueName": "q"}})
    children = render_children(queued, RenderOptions())
    admitted = as_created(children, suspend=False)
    assert up_to_date(admitted, children, queued)


def test_a_finished_job_is_never_touched() -> None:
    wanted = job({"image": "new:2"})
    old = render_children(job(), RenderOptions())
    view = as_created(old)
    finished = JobView.from_manifest(
        {**old.batch_job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    )
    assert not up_to_date(view, render_children(wanted, RenderOptions()), wanted)
    assert up_to_date(finished, render_children(wanted, RenderOptions()), wanted)


class RecordingKube:
    """Stands in for the API client where only status writes and events are of interest.

    Versions count writes: the FineTuneJob starts at "1", each write makes the next.
    """

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.events: list[str] = []
        self.messages: list[str] = []

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> str:
        self.writes.append((resource_version, status))
        return str(len(self.writes) + 1)

    def post_event(self, involved: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.events.append(reason)
        self.messages.append(message)


def pod_view(phase: str, conditions: list[dict[str, str]] | None = None) -> PodView:
    return PodView.from_manifest(
        {
            "metadata": {
                "name": "p",
                "ownerReferences": [{"kind": "Job", "uid": "u", "controller": True}],
            },
            "status": {"phase": phase, "conditions": conditions or []},
        }
    )


def unschedulable(message: str) -> list[PodView]:
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
    }
    return [pod_view("Pending", [scheduled])]


RUNNING = [pod_view("Running", [{"type": "PodScheduled", "status": "True"}])]
ACTIVE_JOB = JobView.from_manifest({"metadata": {"uid": "u"}, "status": {"active": 1}})


def snapshot_at(version: str, status: dict[str, Any] | None = None) -> Snapshot:
    manifest = merge(
        valid_manifest("demo"),
        {"metadata": {"namespace": "ml", "generation": 1, "resourceVersion": version}},
    )
    return Snapshot.from_body({**manifest, "status": status or {}})


def recording_runtime() -> tuple[Runtime, RecordingKube]:
    kube = RecordingKube()
    return Runtime(kube=cast(Kube, kube), options=RenderOptions()), kube


def test_create_to_running_is_one_status_write_and_one_event() -> None:
    runtime, kube = recording_runtime()
    snapshot = snapshot_at("1")
    created = JobView.from_manifest({"metadata": {"uid": "u"}})
    for job, pods in ((None, []), (created, []), (created, [pod_view("Pending")])):
        _, wait = runtime.publish(snapshot, job, pods)
        assert wait is not None and 0 < wait <= runtime.pacing.settle, "transient: waits"
    status, wait = runtime.publish(snapshot, ACTIVE_JOB, RUNNING)
    assert (status.state, wait) == ("Running", None)
    assert [version for version, _ in kube.writes] == ["1"]
    assert kube.events == ["Running"]
    assert runtime.seen(("ml", "demo"), "2"), "the write's echo brings nothing new"


def test_a_restart_posts_a_warning_saying_how_the_replaced_pod_ended() -> None:
    """The replacement may run before any status write saw the old pod end (the
    Restarting state lasts a moment): the event is the record of the eviction."""
    runtime, kube = recording_runtime()
    runtime.publish(snapshot_at("1"), ACTIVE_JOB, RUNNING)
    evicted = PodView.from_manifest(
        {
            "metadata": {
                "name": "demo-old",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"kind": "Job", "uid": "u", "controller": True}],
            },
            "status": {
                "phase": "Failed",
                "reason": "Evicted",
                "message": "The node was low on resource: memory.",
            },
        }
    )
    replacement = PodView.from_manifest(
        {
            "metadata": {
                "name": "demo-new",
                "creationTimestamp": "2026-01-01T00:05:00Z",
                "ownerReferences": [{"kind": "Job", "uid": "u", "controller": True}],
            },
            "status": {
                "phase": "Running",
                "conditions": [{"type": "PodScheduled", "status": "True"}],
            },
        }
    )
    status, _ = runtime.publish(snapshot_at("2"), ACTIVE_JOB, [evicted, replacement])
    assert (status.state, status.restarts) == ("Running", 1)
    assert kube.events == ["Running", "TrainerRestarted"]
    assert kube.messages[-1] == (
        "restart 1: pod demo-old was replaced: the kubelet evicted it "
        "(The node was low on resource: memory.)"
    )
    runtime.publish(snapshot_at("3", status.model_dump(mode="json")), ACTIVE_JOB, [replacement])
    assert kube.events == ["Running", "TrainerRestarted"], "one event per restart"


def test_a_transient_step_is_written_once_it_lasts() -> None:
    runtime, kube = recording_runtime()
    runtime.pacing = Pacing(settle=0.0)
    status, wait = runtime.publish(snapshot_at("1"), None, [])
    assert (status.state, wait, len(kube.writes)) == ("Pending", None, 1)
    assert kube.events == [], "a transient step gets no event"


def test_scheduler_rewording_waits_for_its_interval() -> None:
    runtime, kube = recording_runtime()
    snapshot = snapshot_at("1")
    runtime.publish(snapshot, ACTIVE_JOB, unschedulable("0/4 nodes: 4 Insufficient gpu"))
    _, wait = runtime.publish(snapshot, ACTIVE_JOB, unschedulable("0/4 nodes: 3 Insufficient gpu"))
    assert len(kube.writes) == 1 and kube.events == ["Unschedulable"]
    assert wait is not None and 14 < wait <= runtime.pacing.rewording
    runtime.publish(snapshot, ACTIVE_JOB, RUNNING)
    assert len(kube.writes) == 2, "anything beyond wording is written at once"
    assert kube.writes[1][0] == "2", "based on the version the first write made"


def test_progress_alone_is_written_at_most_every_interval() -> None:
    runtime, kube = recording_runtime()
    snapshot, key, read_at = snapshot_at("1"), ("ml", "demo"), now()
    runtime.publish(snapshot, ACTIVE_JOB, RUNNING)
    runtime.record(key, {"step": 5.0, "total_steps": 10.0}, read_at)
    status, _ = runtime.publish(snapshot, ACTIVE_JOB, RUNNING)
    assert status.progress is not None and status.progress.step == 5
    assert len(kube.writes) == 2, "the first reading is written at once"
    runtime.record(key, {"step": 6.0, "total_steps": 10.0}, read_at + timedelta(seconds=1))
    status, wait = runtime.publish(snapshot, ACTIVE_JOB, RUNNING)
    assert status.progress is not None and status.progress.step == 5, "still the written one"
    assert wait is not None and 14 < wait <= runtime.pacing.progress
    assert len(kube.writes) == 2


def test_a_version_written_by_someone_else_is_the_truth() -> None:
    runtime, kube = recording_runtime()
    runtime.publish(snapshot_at("1"), ACTIVE_JOB, RUNNING)
    assert runtime.previous(snapshot_at("1")).state == "Running", "the cache lags our write"
    foreign = snapshot_at("7", {"state": "Queued"})
    assert runtime.previous(foreign).state == "Queued"
    runtime.publish(foreign, ACTIVE_JOB, RUNNING)
    assert kube.writes[-1][0] == "7" and kube.writes[-1][1]["state"] == "Running"


def test_kopf_connections_leave_room_for_every_watch() -> None:
    assert connection_limit(["ml"], all_namespaces=False) == 32 + 2 + 4
    assert connection_limit(["a", "b", "c"], all_namespaces=False) == 32 + 2 + 12
    assert connection_limit([], all_namespaces=True) == 32 + 2 + 4
    assert connection_limit(["team-*"], all_namespaces=False) == 0, "unknown: unbounded"
