"""The operator's whole metrics page passes ``promtool check metrics``."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from devenv.prometheus import check_metrics
from kubetune import metrics
from tests.unit.test_status_metrics import page_with_jobs

pytestmark = pytest.mark.tools


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
