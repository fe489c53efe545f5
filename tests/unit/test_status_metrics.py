"""The operator's metrics: bounded labels, the jobs gauge, and a page promtool accepts."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from devenv.prometheus import check_metrics
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


def test_the_whole_page_passes_promtool(promtool: Path) -> None:
    metrics.RECONCILES.labels(trigger="spec").inc()
    metrics.RECONCILE_ERRORS.labels(reason="InvalidSpec").inc()
    metrics.RECONCILE_DURATION.labels(trigger="child").observe(0.01)
    metrics.JOB_CREATION.observe(0.3)
    metrics.QUEUED.observe(42)
    metrics.JOB_DURATION.labels(outcome="Succeeded").observe(3600)
    page = generate_latest(metrics.REGISTRY).decode() + page_with_jobs()
    checked = check_metrics(page)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), (
        checked.stdout + checked.stderr
    )
    assert "_created" not in page, "created-timestamp series are disabled"
    assert "process_resident_memory_bytes" in page
