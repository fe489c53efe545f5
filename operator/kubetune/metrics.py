"""The operator's own Prometheus metrics (``kubetune operator --metrics-port``).

Labels are bounded: namespace, state, trigger, reason and outcome take a handful of
values each. Nothing is labelled by job name: per-job and per-step series stay on the
trainer pods, which Prometheus scrapes directly.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from kubetune_contract.api.status import State

# ``*_created`` series double the series count and no dashboard reads them.
disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: Seconds buckets from one second to a day (queueing and training are long).
_LONG_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)

RECONCILES = Counter(
    "kubetune_operator_reconciles",
    "Reconciliation passes of FineTuneJobs, by what first asked for them (spec, child, "
    "policy, crd, progress, timer).",
    ["trigger"],
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "kubetune_operator_reconcile_errors",
    "Reconciliations that failed, by reason (InvalidSpec, PolicyViolation, "
    "CRDOutdated or the API error reason).",
    ["reason"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "kubetune_operator_reconcile_duration_seconds",
    "Time one reconciliation took, by trigger.",
    ["trigger"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
STATUS_WRITES = Counter(
    "kubetune_operator_status_writes",
    "FineTuneJob status writes, by what changed: progress (status.progress alone) or state "
    "(anything else).",
    ["change"],
    registry=REGISTRY,
)
JOB_CREATION = Histogram(
    "kubetune_operator_job_creation_seconds",
    "Time from a FineTuneJob's creation to its batch/v1 Job's creation.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
QUEUED = Histogram(
    "kubetune_operator_queued_seconds",
    "Time a FineTuneJob waited (Kueue admission, scheduling) before training started.",
    buckets=_LONG_BUCKETS,
    registry=REGISTRY,
)
JOB_DURATION = Histogram(
    "kubetune_operator_job_duration_seconds",
    "Time from training start to the end of a FineTuneJob, by outcome.",
    ["outcome"],
    buckets=_LONG_BUCKETS,
    registry=REGISTRY,
)


class JobsByState(Collector):
    """``kubetune_operator_jobs``: FineTuneJobs by namespace and state, read at scrape
    time from the operator's view (so a deleted job's series disappear with it)."""

    def __init__(self, states: Callable[[], Mapping[tuple[str, str], State]]) -> None:
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kubetune_operator_jobs",
            "FineTuneJobs known to the operator, by namespace and state.",
            labels=["namespace", "state"],
        )
        counts = Tally((namespace, state) for (namespace, _), state in self._states().items())
        for (namespace, state), count in sorted(counts.items()):
            family.add_metric([namespace, state], count)
        yield family


def serve(port: int, states: Callable[[], Mapping[tuple[str, str], State]]) -> None:
    """Register the jobs gauge and serve ``/metrics`` on ``port`` (0: don't serve)."""
    REGISTRY.register(JobsByState(states))
    if port:
        start_http_server(port, registry=REGISTRY)
