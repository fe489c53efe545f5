"""When the controller needs no API call: Jobs already up to date, scheduler rewording."""

from __future__ import annotations

from typing import Any, cast

from kubetune.api import FineTuneJob, parse_finetunejob
from kubetune.controller.children import up_to_date
from kubetune.controller.kube import Kube
from kubetune.controller.login import connection_limit
from kubetune.controller.runtime import Runtime, Snapshot
from kubetune.controller.status import Transition
from kubetune.controller.views import JobView, PodView
from kubetune.render.children import Children, render_children
from kubetune.render.options import RenderOptions
from tests.cases.manifests import merge, valid_manifest


def job(spec: dict[str, Any] | None = None) -> FineTuneJob:
    return parse_finetunejob(merge(valid_manifest("demo"), {"spec": spec or {}}))


def as_created(children: Children, **spec: Any) -> JobView:
    """The Job as the API server returns it after creation (plus spec changes)."""
    manifest = children.job
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
        {**old.job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    )
    assert not up_to_date(view, render_children(wanted, RenderOptions()), wanted)
    assert up_to_date(finished, render_children(wanted, RenderOptions()), wanted)


class RecordingKube:
    """Stands in for the API client where only the status writes are of interest."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.writes.append(status)


def unschedulable(message: str) -> list[PodView]:
    return [
        PodView.from_manifest(
            {
                "metadata": {
                    "name": "p",
                    "ownerReferences": [{"kind": "Job", "uid": "u", "controller": True}],
                },
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                        }
                    ],
                },
            }
        )
    ]


def test_scheduler_rewording_is_written_at_most_every_interval() -> None:
    manifest = merge(valid_manifest("demo"), {"metadata": {"namespace": "ml", "generation": 1}})
    snapshot = Snapshot.from_body(manifest)
    kube = RecordingKube()
    runtime = Runtime(kube=cast(Kube, kube), options=RenderOptions())
    running_job = JobView.from_manifest({"metadata": {"uid": "u"}, "status": {"active": 1}})
    events: list[Transition] = []
    for message in ("0/4 nodes: 4 Insufficient gpu", "0/4 nodes: 3 Insufficient gpu"):
        runtime.publish(
            snapshot, running_job, unschedulable(message), lambda _, t: events.append(t)
        )
    assert len(kube.writes) == 1 and [e.reason for e in events] == ["Unschedulable"]
    runtime.publish(snapshot, running_job, [], lambda _, t: events.append(t))
    assert len(kube.writes) == 2, "anything beyond wording is written at once"


def test_kopf_connections_leave_room_for_every_watch() -> None:
    assert connection_limit(["ml"], all_namespaces=False) == 32 + 2 + 4
    assert connection_limit(["a", "b", "c"], all_namespaces=False) == 32 + 2 + 12
    assert connection_limit([], all_namespaces=True) == 32 + 2 + 4
    assert connection_limit(["team-*"], all_namespaces=False) == 0, "unknown: unbounded"
