"""A kubelet that stops under a running job, a kubelet that evicts it for memory
pressure, and deletion of a job in every phase.

Both on the real node, with the fault tests' own control plane (short node-failure
timeouts) and an operator process on the host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from devenv import network
from devenv.cluster import ControlPlane
from devenv.dev import s3_secret
from devenv.node import RealNode
from devenv.process import Process
from devenv.s3 import S3Server
from tests.cases.jobs import INTERRUPTIBLE_STEPS
from tests.chaos.chaos import Cluster, wait_until
from tests.chaos.conftest import kwok_manifest, output_uri, real_manifest, s3_keys
from tests.chaos.throttle import throttled

pytestmark = [pytest.mark.e2e, pytest.mark.node, pytest.mark.chaos]

_RESUMED = re.compile(r"resuming from \S+/checkpoints/step-(\d+) \(step (\d+)\)")
#: Steps of a job that must outlive a node fault: far more than it can train while a
#: fault plays out (the quickstart does 37-55 steps a second here; a stopped kubelet is
#: NotReady after 20 s, its pod evicted 10 s later, and 2,400 steps once finished within
#: the outage). The tests end once the replacement trains on, so the number costs nothing.
LONG_STEPS = 100_000
#: Kubelet configuration under which the node is always short of memory: the soft
#: threshold lies above what any running machine has free, so the kubelet evicts its
#: pods the way it does on a full node, with a grace period for the checkpoint.
MEMORY_PRESSURE = {
    "evictionSoft": {"memory.available": "99%"},
    "evictionSoftGracePeriod": {"memory.available": "0s"},
    "evictionMaxPodGracePeriod": 60,
    "evictionPressureTransitionPeriod": "5s",
}


@pytest.fixture
def operator(operator_factory: Callable[[], Process]) -> Iterator[Process]:
    proc = operator_factory()
    try:
        yield proc
    finally:
        proc.stop()


def _step(cluster: Cluster, name: str) -> int:
    progress = ((cluster.ftj(name) or {}).get("status") or {}).get("progress") or {}
    return int(progress.get("step") or 0)


def _resumes_and_trains_on(cluster: Cluster, name: str, *, replaced: str) -> None:
    """Wait until a replacement of the pod ``replaced`` has resumed from a checkpoint
    (past step 2, where the fault struck at the earliest) and the job's status shows
    it training beyond that step. The rest of the run is plain training (the job is
    deleted with the test's namespace)."""

    def resumed_at() -> int | None:
        for pod in cluster.pods(name):
            if pod.metadata.name == replaced or pod.status.phase != "Running":
                continue
            log = cluster.core.read_namespaced_pod_log(pod.metadata.name, cluster.namespace)
            if found := _RESUMED.search(log):
                return int(found.group(2))
        return None

    step = wait_until(resumed_at, f"a replacement of {replaced} resumes", 360)
    assert step >= 2
    wait_until(lambda: _step(cluster, name) > step, f"{name} trains on past step {step}", 120)


def test_a_stopped_kubelet_is_named_and_the_replacement_resumes_from_the_checkpoint(
    chaos_node: RealNode,
    chaos_kube: Any,
    chaos_namespace: str,
    operator: Process,
    quickstart_data: str,
) -> None:
    cluster = Cluster(chaos_kube, chaos_namespace)
    cluster.create(real_manifest(chaos_namespace, "orphaned", LONG_STEPS))
    wait_until(lambda: _step(cluster, "orphaned") >= 2, "orphaned reached step 2", 240)
    (first,) = cluster.pods("orphaned")
    chaos_node.stop_kubelet()
    try:
        said = wait_until(
            lambda: (
                (c := cluster.condition("orphaned", "Running")).get("reason") == "NodeNotReady"
                and c
            ),
            "the job says its node stopped reporting",
            90,
        )
        assert f"pod {first.metadata.name} is not ready" in said["message"]
        evicted = wait_until(
            lambda: (
                (c := cluster.condition("orphaned", "Queued")).get("reason") == "NodeLost" and c
            ),
            "the job says its pod was evicted and waits for the node",
            90,
        )
        assert (
            f"pod {first.metadata.name} was evicted from its unreachable node"
            in (evicted["message"])
        )
    finally:
        chaos_node.start_kubelet()
    # Back, the kubelet stops the evicted pod's container (SIGTERM: a checkpoint), and
    # the replacement resumes from it.
    _resumes_and_trains_on(cluster, "orphaned", replaced=first.metadata.name)


def test_a_pod_evicted_for_memory_pressure_is_named_and_the_replacement_resumes(
    chaos_node: RealNode,
    chaos_kube: Any,
    chaos_namespace: str,
    operator: Process,
    quickstart_data: str,
) -> None:
    cluster = Cluster(chaos_kube, chaos_namespace)
    manifest = real_manifest(chaos_namespace, "pressed", LONG_STEPS)
    manifest["spec"]["backoffLimit"] = 0  # an eviction that counted would fail the job
    cluster.create(manifest)
    wait_until(lambda: _step(cluster, "pressed") >= 2, "pressed reached step 2", 240)
    (first,) = cluster.pods("pressed")
    name = first.metadata.name
    chaos_node.restart_kubelet(MEMORY_PRESSURE)
    try:
        evicted = wait_until(
            lambda: (
                (pod := cluster.core.read_namespaced_pod(name, chaos_namespace)).status.reason
                == "Evicted"
                and pod
            ),
            "the kubelet evicts the trainer pod",
            180,
        )
    finally:
        chaos_node.restart_kubelet()  # pressure over: the replacement can run
    assert "low on resource: memory" in evicted.status.message

    _resumes_and_trains_on(cluster, "pressed", replaced=name)
    status = (cluster.ftj("pressed") or {})["status"]
    assert status["state"] == "Running", status["conditions"]
    assert status["restarts"] >= 1
    events = cluster.core.list_namespaced_event(
        chaos_namespace, field_selector="involvedObject.name=pressed"
    ).items
    restarted = [e.message for e in events if e.reason == "TrainerRestarted"]
    assert any(
        f"pod {name} was replaced: the kubelet evicted it (The node was low on resource: memory"
        in message
        for message in restarted
    ), [f"{e.reason}: {e.message}" for e in events]


def test_a_pod_evicted_as_its_trainer_starts_stops_and_is_replaced(
    chaos_node: RealNode,
    chaos_kube: Any,
    chaos_namespace: str,
    operator: Process,
    quickstart_data: str,
) -> None:
    # The trainer is process 1 of its pod: until it handles SIGTERM, the kernel drops it.
    # It holds the signal from its first line (kubetune_trainer/startup_signals.py); an
    # eviction that came while it imported torch went unheard before, and the evicted pod
    # trained all its steps and Succeeded, restarts 0.
    cluster = Cluster(chaos_kube, chaos_namespace)
    cluster.create(real_manifest(chaos_namespace, "early", INTERRUPTIBLE_STEPS))
    first = cluster.running_pod("early")  # its container has started: importing
    evicted = time.monotonic()
    cluster.evict(first)

    def gone() -> bool:
        listed = cluster.core.list_namespaced_pod(chaos_namespace, label_selector="")
        return all(pod.metadata.name != first for pod in listed.items)

    wait_until(gone, f"the evicted pod {first} is gone", 90)
    print(f"evicted as it started: pod {first} gone {time.monotonic() - evicted:.1f}s later")
    wait_until(lambda: cluster.state("early") == "Succeeded", "early Succeeded", 300)
    status = (cluster.ftj("early") or {})["status"]
    assert status["progress"]["step"] == INTERRUPTIBLE_STEPS, status
    # The replacement trained the job (the Job keeps a finished pod); unheard, the evicted
    # pod would have trained it, and gone with its eviction.
    replacements = [pod.metadata.name for pod in cluster.pods("early")]
    assert replacements and first not in replacements, replacements


def _incomplete_checkpoints(keys: list[str]) -> list[str]:
    """Checkpoint prefixes without their completion marker (must be none)."""
    steps: dict[str, set[str]] = {}
    for key in keys:
        parts = key.split("/")
        if parts[0] == "checkpoints" and len(parts) > 2:
            steps.setdefault(parts[1], set()).add("/".join(parts[2:]))
    return [step for step, files in steps.items() if "COMPLETE" not in files]


def test_deleting_a_job_in_any_phase_leaves_no_child_and_no_partial_checkpoint(
    chaos_plane: ControlPlane,
    chaos_node: RealNode,
    chaos_kube: Any,
    chaos_namespace: str,
    operator: Process,
    s3: S3Server,
    quickstart_data: str,
) -> None:
    cluster = Cluster(chaos_kube, chaos_namespace)
    s3_port = urlparse(s3.pod_endpoint).port or 0
    # Pods reach S3 through a link of 40 KB/s: every checkpoint upload lasts seconds.
    with throttled("0.0.0.0", "127.0.0.1", s3_port, 40_000) as slow_port:
        slow = s3_secret(s3, "slow-s3")
        slow["stringData"]["AWS_ENDPOINT_URL"] = f"http://{network.HOST_ADDRESS}:{slow_port}"
        chaos_plane.request("POST", f"/api/v1/namespaces/{chaos_namespace}/secrets", slow)

        def slow_job(name: str, steps: int, every: int) -> dict[str, Any]:
            manifest = real_manifest(chaos_namespace, name, steps)
            manifest["spec"]["output"]["credentialsSecret"] = "slow-s3"
            manifest["spec"]["checkpoints"] = {"intervalSteps": every}
            return manifest

        queued = kwok_manifest("queued")
        # No node has the label: the job stays queued.
        queued["spec"]["scheduling"] = {"nodeSelector": {"kubetune.io/test-no-such-node": "true"}}
        cluster.create(queued)
        cluster.create(kwok_manifest("pending"))  # KWOK pods run until ended; deleted first
        cluster.create(slow_job("running", 400, 1000))
        cluster.create(slow_job("checkpointing", 400, 4))
        cluster.create(slow_job("publishing", 3, 1000))

        def writing(name: str, folder: str) -> bool:
            keys = s3_keys(s3, output_uri(chaos_namespace, name))
            if folder == "checkpoints":
                return bool(_incomplete_checkpoints(keys))
            return any("/" not in k for k in keys) and "manifest.json" not in keys

        wait_until(lambda: cluster.state("queued") == "Queued", "queued is Queued", 60)
        cluster.delete("queued")
        wait_until(lambda: cluster.pods("pending"), "pending has a pod", 60)
        cluster.delete("pending")
        wait_until(lambda: _step(cluster, "running") >= 2, "running trains", 300)
        cluster.delete("running")
        wait_until(lambda: writing("checkpointing", "checkpoints"), "a checkpoint upload", 300)
        cluster.delete("checkpointing")
        wait_until(lambda: writing("publishing", "result"), "the result upload", 300)
        cluster.delete("publishing")

        for name in ("queued", "pending", "running", "checkpointing", "publishing"):
            wait_until(lambda name=name: cluster.ftj(name) is None, f"{name} is gone", 120)
            wait_until(
                lambda name=name: not cluster.children(name), f"{name}'s children are gone", 120
            )
        for name in ("running", "checkpointing", "publishing"):
            keys = s3_keys(s3, output_uri(chaos_namespace, name))
            assert not _incomplete_checkpoints(keys), f"{name}: a partial checkpoint: {keys}"
