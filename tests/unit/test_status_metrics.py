"""The operator's metrics: bounded labels and the jobs gauge (promtool's check of the whole
page is tests/tools/test_metrics_page.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from kubetune import metrics


def page_with_jobs() -> str:
    registry = CollectorRegistry()
    states = {("ml", "a"): "Running", ("ml", "b"): "Running", ("cv", "c"): "Failed"}
    registry.register(metrics.JobsByState(lambda: states))
    return generate_latest(registry).decode()


def test_jobs_are_counted_by_namespace_and_state_without_job_names() -> None:
    page = page_with_jobs()
    assert 'kubetune_operator_jobs{namespace="ml",state="Running"} 2.0' in page
    assert 'kubetune_operator_jobs{namespace="cv",state="Failed"} 1.0' in page
    assert '"a"' not in page and "name=" not in page
