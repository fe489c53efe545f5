"""up_to_date: when a resumed or updated FineTuneJob needs no API call for its Job."""

from __future__ import annotations

from typing import Any

from kubetune.api import FineTuneJob, parse_finetunejob
from kubetune.controller.children import up_to_date
from kubetune.controller.views import JobView
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
