"""Rolling the operator while jobs run (issue 19, item 3).

The release runs two replicas with peering (one active, one standing by). Under a real
trainer job and four KWOK jobs, the test rolls the Deployment (``kubectl rollout
restart``: each replica is replaced, a new one Ready before an old one goes), scales it
to one replica the way the chart is changed (``helm upgrade --reuse-values``), and rolls
that single replica; a KWOK job is ended (Succeeded or Failed) right as each change
starts, one after the last. What must hold:

* progress keeps being written: ``status.progress.updatedAt`` of the real job is polled
  throughout and the longest gap between two updates is printed (only a generous
  sanity bound is asserted: speed targets belong to bench/);
* no Job is created twice: the API server's audit log has one successful create per
  FineTuneJob;
* no event of record is lost or doubled: each ended job has its ``Succeeded``/``Failed``
  event exactly once (one Event, count 1), and no job has any event reason twice.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest
from kubernetes import client

from devenv.cluster import ControlPlane
from kubetune_contract.api import KIND
from tests.chaos.chaos import FAILURE_SUMMARY, SUCCESS_SUMMARY, Cluster, creates_per_job, wait_until
from tests.chaos.conftest import kwok_manifest
from tests.chart import CHART, helm
from tests.day_two.conftest import TRAINER, operator_pods, start_trainer
from tests.e2e.conftest import OPERATOR, RELEASE, RELEASE_NAMESPACE, rollout_status

pytestmark = [pytest.mark.e2e, pytest.mark.node]

#: KWOK job -> the phase its trainer ends in, in the order the test ends them.
KWOK_ENDINGS = {
    "ends-in-roll": "Succeeded",
    "ends-in-scale": "Failed",
    "ends-in-solo-roll": "Succeeded",
    "ends-after": "Failed",
}
#: More than a handover can take, far less than "progress stopped" (a sanity bound only).
GAP_BOUND = 60.0


class ProgressWatch:
    """Polls one job's ``status.progress`` every half second from a thread and keeps the
    moment each new ``updatedAt`` was first seen, with its step."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.seen: list[tuple[float, int]] = []
        self.error: BaseException | None = None
        self.stopped = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProgressWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped = time.monotonic()
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        last = None
        try:
            while not self._stop.wait(0.5):
                status = (self.cluster.ftj(self.name) or {}).get("status") or {}
                progress = status.get("progress") or {}
                if progress.get("updatedAt") not in (None, last):
                    last = progress["updatedAt"]
                    self.seen.append((time.monotonic(), int(progress.get("step") or 0)))
        except BaseException as error:  # surfaced by the test, not lost with the thread
            self.error = error

    def updates_since(self, moment: float) -> int:
        return sum(1 for at, _ in self.seen if at > moment)

    def gaps(self) -> list[tuple[float, float]]:
        """Each time without a new reading, the last one lasting until the watch ended,
        with when (monotonic) it ended."""
        moments = [at for at, _ in self.seen] + [self.stopped]
        return [(later - earlier, later) for earlier, later in itertools.pairwise(moments)]


def _events(kube: Any, namespace: str) -> dict[str, list[Any]]:
    """The namespace's events about FineTuneJobs, per job."""
    found: dict[str, list[Any]] = {}
    listed: Any = client.CoreV1Api(kube).list_namespaced_event(namespace)
    for event in listed.items:
        if event.involved_object.kind == KIND:
            found.setdefault(event.involved_object.name, []).append(event)
    return found


def test_rolling_and_scaling_the_operator_loses_no_progress_job_or_event(
    day_two_plane: ControlPlane, day_two_kube: Any, day_two_cluster: Cluster
) -> None:
    cp, cluster = day_two_plane, day_two_cluster
    start_trainer(cluster)
    for name in KWOK_ENDINGS:
        cluster.create(kwok_manifest(name))
    pods = {name: cluster.running_pod(name) for name in KWOK_ENDINGS}
    wait_until(lambda: cluster.state(TRAINER) == "Running", f"{TRAINER} is Running", 240)
    endings = iter(KWOK_ENDINGS.items())
    replaced = operator_pods(day_two_kube)

    def end_next() -> None:
        name, phase = next(endings)
        summary, code = (SUCCESS_SUMMARY, 0) if phase == "Succeeded" else (FAILURE_SUMMARY, 3)
        cluster.end_kwok_trainer(pods[name], phase, code, summary)

    timings: dict[str, float] = {}
    phases = [(0.0, "two replicas, before the rollouts")]

    def roll(label: str) -> None:
        """Restart the Deployment; end the next KWOK job the moment a new replica is
        Ready, which is when the Deployment stops an old one (a handover under way)."""
        phases.append((started := time.monotonic(), label))
        before = operator_pods(day_two_kube)
        cp.kubectl("rollout", "restart", OPERATOR, "-n", RELEASE_NAMESPACE)
        wait_until(
            lambda: operator_pods(day_two_kube, ready=True) - before, "a new replica is Ready", 120
        )
        end_next()
        rollout_status(cp)
        timings[label] = time.monotonic() - started

    with ProgressWatch(cluster, TRAINER) as watch:
        wait_until(lambda: watch.updates_since(0) >= 2, "progress is written", 240)
        roll("rollout restart, two replicas")

        label = "helm upgrade to one replica"
        phases.append((started := time.monotonic(), label))
        helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            RELEASE_NAMESPACE,
            "--reuse-values",
            "--set",
            "replicaCount=1",
            env=cp.env(),
            timeout=180,
        )
        end_next()
        wait_until(lambda: len(operator_pods(day_two_kube)) == 1, "one operator pod left", 120)
        timings[label] = time.monotonic() - started

        roll("rollout restart, one replica")
        phases.append((rolled := time.monotonic(), "after the rollouts"))
        end_next()
        wait_until(
            lambda: all(cluster.state(n) == p for n, p in KWOK_ENDINGS.items()),
            f"the KWOK jobs end: {KWOK_ENDINGS}",
            120,
        )
        wait_until(
            lambda: watch.updates_since(rolled) >= 5, "progress is written after the rollouts", 120
        )
    assert watch.error is None, f"the progress poller failed: {watch.error!r}"

    longest: dict[str, float] = {}
    for gap, ended in watch.gaps():
        during = next(label for at, label in reversed(phases) if at <= ended)
        longest[during] = max(gap, longest.get(during, 0.0))
    steps = [step for _, step in watch.seen]
    print(
        f"rollout: {', '.join(f'{k} {v:.1f}s' for k, v in timings.items())}; "
        f"{len(watch.seen)} progress updates, steps {steps[0]}..{steps[-1]}; longest gap "
        f"between updates: {', '.join(f'{k} {v:.1f}s' for k, v in longest.items())}"
    )
    assert max(longest.values()) < GAP_BOUND, f"progress stopped: {longest}"
    assert steps == sorted(steps), f"progress went backwards: {steps}"
    assert cluster.state(TRAINER) == "Running"
    (last,) = operator_pods(day_two_kube)
    assert last not in replaced, "the rollouts left an operator pod in place: no handover"

    audited = creates_per_job(cp.audit_log)
    creates = {name: count for (ns, name), count in audited.items() if ns == cluster.namespace}
    assert creates == dict.fromkeys([TRAINER, *KWOK_ENDINGS], 1), f"Job creates: {creates}"

    events = _events(day_two_kube, cluster.namespace)
    for name, phase in KWOK_ENDINGS.items():
        of_record = [e for e in events.get(name, []) if e.message.startswith(phase)]
        assert [e.count for e in of_record] == [1], (
            f"{name}: {phase} events {[(e.reason, e.message, e.count) for e in of_record]}"
        )
    doubled = {
        name: [reason for reason, n in Counter(e.reason for e in found).items() if n > 1]
        for name, found in events.items()
    }
    assert not any(doubled.values()), f"event reasons posted twice: {doubled}"
