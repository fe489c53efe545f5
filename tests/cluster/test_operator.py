"""The operator against the real control plane: every lifecycle path, end to end.

Each test runs ``kubetune operator`` as a real process watching the test's namespace.
Training pods land on KWOK GPU nodes; the operator puts ``kubetune.io/test-phase:
Running`` on every pod (``--pod-annotation``), so KWOK keeps them Running until a test
ends the trainer the way a kubelet reports it: the test annotates the pod with the
phase, exit code and termination message (the trainer's JSON summary), and KWOK writes
them into the pod status (see :mod:`devenv.cluster`).

Every state reached is also shown to Argo CD's own health evaluation
(:func:`tests.argocd_health.check`), which must report the expected health and message
for the object exactly as the operator wrote it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.cluster import (
    TEST_EXIT_CODE_ANNOTATION,
    TEST_PHASE_ANNOTATION,
    TEST_TERMINATION_MESSAGE_ANNOTATION,
    ControlPlane,
)
from devenv.process import Process, free_port, poll, wait_for
from devenv.prometheus import check_metrics
from kubetune.render.labels import JOB_LABEL
from kubetune_contract.api import GROUP, PLURAL, VERSION
from kubetune_trainer.metrics import TrainerMetrics
from tests import argocd_health
from tests.cases.manifests import merge, valid_manifest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
H100 = "NVIDIA-H100-80GB-HBM3"
TIMEOUT = 30.0


class Operator:
    """``kubetune operator`` as a child process, with its log and metrics endpoint."""

    def __init__(self, cp: ControlPlane, log_dir: Path, name: str, *args: str) -> None:
        self.metrics_port = free_port()
        self.process = Process(
            name,
            [
                str(Path(sys.executable).parent / "kubetune"),
                "operator",
                f"--metrics-port={self.metrics_port}",
                f"--pod-annotation={TEST_PHASE_ANNOTATION}=Running",
                "--trainer-image=trainer:test",
                *args,
            ],
            log_dir / f"{name}.log",
            env=cp.env(),
        )
        wait_for(self.process, self.metrics, what="/metrics answers", timeout=60)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.process.log_file.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(10)


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    """The FineTuneJob CRD (crds/) and kopf's peering CRDs (from the chart)."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    peering = ROOT / "charts" / "kubetune" / "crds" / "kopf-peering.yaml"
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(peering))
    for crd in ("finetunejobs.kubetune.io", "kopfpeerings.kopf.dev"):
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd}")
    poll(
        lambda: control_plane.kubectl("get", "ftj", "-A", check=False).returncode == 0,
        what="finetunejobs are served",
    )
    return control_plane


@pytest.fixture
def start_operator(installed: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def start(*args: str, name: str = "operator") -> Operator:
        operator = Operator(installed, tmp_path, f"{name}-{len(started)}", *args)
        started.append(operator)
        return operator

    try:
        yield start
    finally:
        for operator in started:
            operator.process.stop()


@pytest.fixture
def operator(start_operator: Callable[..., Operator], namespace: str) -> Operator:
    return start_operator(f"--namespace={namespace}", "--standalone")


class Cluster:
    """Reads and writes of one test namespace."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(kube)
        self.core = client.CoreV1Api(kube)
        self.batch = client.BatchV1Api(kube)

    def create(self, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        manifest = merge(valid_manifest(name), {"spec": spec or {}})
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )
        return created

    def ftj(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.ftj(name).get("status") or {}
        return status

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        return next(c for c in self.status(name)["conditions"] if c["type"] == kind)

    def wait_state(self, name: str, state: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return poll(
            lambda: (s := self.status(name)).get("state") == state and s,
            what=f"{name} is {state}",
            timeout=timeout,
        )

    def argocd(self, name: str, case: str, health: str, message: str) -> None:
        """Argo CD's verdict on the FineTuneJob as it is now (see the module docstring)."""
        argocd_health.check(self.ftj(name), case, health, message)

    def job(self, name: str) -> dict[str, Any] | None:
        try:
            job = self.batch.read_namespaced_job(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(client.ApiClient().sanitize_for_serialization(job))

    def jobs(self) -> list[str]:
        found = self.batch.list_namespaced_job(self.namespace, label_selector=JOB_LABEL)
        return sorted(job.metadata.name for job in found.items)

    def pods(self, name: str) -> list[Any]:
        selector = f"{JOB_LABEL}={name}"
        items = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return [p for p in items if p.metadata.deletion_timestamp is None]

    def running_pods(self, name: str, count: int = 1) -> list[Any]:
        return poll(
            lambda: (
                len(p := [x for x in self.pods(name) if x.status.phase == "Running"]) == count and p
            ),
            what=f"{count} pod(s) of {name} run",
            timeout=TIMEOUT,
        )

    def end_trainer(self, pod: str, phase: str, exit_code: int, summary: dict[str, Any]) -> None:
        """Make KWOK terminate the trainer as the kubelet would report it."""
        annotations = {
            TEST_PHASE_ANNOTATION: phase,
            TEST_EXIT_CODE_ANNOTATION: str(exit_code),
            TEST_TERMINATION_MESSAGE_ANNOTATION: json.dumps(summary),
        }
        self.core.patch_namespaced_pod(
            pod, self.namespace, {"metadata": {"annotations": annotations}}
        )

    def events(self, name: str) -> list[tuple[str, str, int]]:
        selector = f"involvedObject.kind=FineTuneJob,involvedObject.name={name}"
        found = self.core.list_namespaced_event(self.namespace, field_selector=selector).items
        return [(e.type, e.reason, e.count or 1) for e in found]


@pytest.fixture
def cluster(kube: Any, namespace: str) -> Cluster:
    return Cluster(kube, namespace)


SUCCESS = {
    "outcome": "Succeeded",
    "reason": "Succeeded",
    "message": "training finished",
    "exitCode": 0,
    "step": 20,
    "totalSteps": 20,
    "metrics": {"loss": 0.42, "evalLoss": 0.51},
    "result": {
        "adapterUri": "s3://models/demo/adapter",
        "manifestUri": "s3://models/demo/manifest.json",
        "mergedUri": None,
    },
    "checkpoints": [{"step": 10, "uri": "s3://models/demo/checkpoints/checkpoint-10"}],
}
GPU_JOB = {"resources": {"gpus": 1, "gpuType": H100}}


def trainer_summary(outcome: str, reason: str, message: str, exit_code: int) -> dict[str, Any]:
    """What the trainer writes as termination message when it doesn't succeed."""
    return {"outcome": outcome, "reason": reason, "message": message, "exitCode": exit_code}


def test_job_runs_on_a_gpu_node_and_succeeds_with_a_result(
    operator: Operator, cluster: Cluster, kubectl: Callable[..., Any]
) -> None:
    ftj = cluster.create("llama", GPU_JOB)
    pod = cluster.running_pods("llama")[0]
    assert pod.spec.node_name.startswith("gpu-h100-")
    job = cluster.job("llama")
    assert job is not None
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "FineTuneJob",
        ftj["metadata"]["uid"],
        True,
    )
    running = cluster.wait_state("llama", "Running")
    assert running["startTime"] and running["observedGeneration"] == 1
    cluster.argocd("llama", "running", "Progressing", "Running: training started")

    cluster.end_trainer(pod.metadata.name, "Succeeded", 0, SUCCESS)
    done = cluster.wait_state("llama", "Succeeded")
    assert done["result"]["adapterUri"] == "s3://models/demo/adapter"
    cluster.argocd(
        "llama",
        "succeeded",
        "Healthy",
        "Succeeded: training finished at step 20; adapter at s3://models/demo/adapter",
    )
    assert done["result"]["metrics"] == {"loss": 0.42, "evalLoss": 0.51}
    assert done["checkpoints"][0]["step"] == 10
    assert done["progress"]["step"] == 20 and done["completionTime"]
    poll(
        lambda: not cluster.ftj("llama")["metadata"].get("finalizers"),
        what="the progress daemon's finalizer is gone once the job finished",
    )
    poll(
        lambda: (
            {"JobCreated", "Running", "Succeeded"} <= {r for _, r, _ in cluster.events("llama")}
        ),
        what="an event for each step (kopf posts them asynchronously)",
    )
    printed = kubectl("get", "ftj", "llama", "-n", cluster.namespace).stdout
    assert "Succeeded" in printed

    page = operator.metrics()
    line = f'kubetune_operator_jobs{{namespace="{cluster.namespace}",state="Succeeded"}} 1.0'
    assert line in page
    assert "kubetune_operator_job_creation_seconds_count 1.0" in page
    checked = check_metrics(page)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "created Job llama" in operator.log()


def test_trainer_failure_reason_reaches_failed(operator: Operator, cluster: Cluster) -> None:
    cluster.create("bad-data", GPU_JOB)
    pod = cluster.running_pods("bad-data")[0]
    summary = trainer_summary("Failed", "InvalidData", "train.jsonl line 3: no 'messages'", 3)
    cluster.end_trainer(pod.metadata.name, "Failed", 3, summary)
    status = cluster.wait_state("bad-data", "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "InvalidData"
    assert "line 3" in failed["message"]
    assert status["restarts"] == 0, "exit code 3 fails the Job at once (podFailurePolicy)"
    cluster.argocd(
        "bad-data",
        "failed-invalid-data",
        "Degraded",
        r"InvalidData: train.jsonl line 3: no 'messages' \(PodFailurePolicy: .+\)",
    )
    poll(
        lambda: ("Warning", "InvalidData") in [(t, r) for t, r, _ in cluster.events("bad-data")],
        what="a Warning event names the trainer's reason",
    )


def test_unschedulable_job_says_why(operator: Operator, cluster: Cluster) -> None:
    cluster.create("huge", {"resources": {"gpus": 16}})
    poll(
        lambda: (
            cluster.status("huge").get("conditions")
            and cluster.condition("huge", "Queued")["reason"] == "Unschedulable"
        ),
        what="huge is Unschedulable",
        timeout=TIMEOUT,
    )
    queued = cluster.condition("huge", "Queued")
    assert queued["status"] == "True"
    assert "Insufficient nvidia.com/gpu" in queued["message"]
    assert cluster.status("huge")["state"] == "Queued"
    cluster.argocd(
        "huge",
        "queued-unschedulable",
        "Progressing",
        r"Queued: Unschedulable: 0/\d+ nodes are available: .*Insufficient nvidia.com/gpu.*",
    )


def test_invalid_spec_is_refused_without_children_or_retries(
    operator: Operator, cluster: Cluster
) -> None:
    patch = {"adapter": {"type": "partial", "partial": {"patterns": ["(unclosed"]}}}
    cluster.create("typo", patch)
    status = cluster.wait_state("typo", "Invalid")
    accepted = next(c for c in status["conditions"] if c["type"] == "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")
    assert "spec.adapter.partial.patterns" in accepted["message"]
    assert cluster.jobs() == []
    cluster.argocd("typo", "invalid", "Degraded", r"InvalidSpec: spec.adapter.partial.patterns: .+")
    assert (
        cluster.core.list_namespaced_config_map(cluster.namespace, label_selector=JOB_LABEL).items
        == []
    )

    def warnings() -> list[tuple[str, str, int]]:
        return [(t, r, n) for t, r, n in cluster.events("typo") if r == "InvalidSpec"]

    poll(warnings, what="a Warning event says why")

    # the API server lets training fields change only together with suspend: true
    cluster.patch_spec("typo", {"suspend": True, "adapter": {"type": "lora", "partial": None}})
    cluster.wait_state("typo", "Suspended")
    cluster.patch_spec("typo", {"suspend": False})
    cluster.wait_state("typo", "Running")
    assert warnings() == [("Warning", "InvalidSpec", 1)], "one event, no retry storm"


def test_suspend_stops_pods_and_resume_applies_spec_changes(
    operator: Operator, cluster: Cluster
) -> None:
    cluster.create("pausable", GPU_JOB)
    cluster.running_pods("pausable")
    cluster.wait_state("pausable", "Running")
    first_uid = cluster.job("pausable")["metadata"]["uid"]  # type: ignore[index]

    cluster.patch_spec("pausable", {"suspend": True})
    cluster.wait_state("pausable", "Suspended")
    poll(lambda: cluster.pods("pausable") == [], what="the pods are gone", timeout=TIMEOUT)
    assert cluster.job("pausable")["spec"]["suspend"] is True  # type: ignore[index]
    poll(
        lambda: "stopping" not in cluster.condition("pausable", "Suspended")["message"],
        what="the status says the pods are gone",
    )
    cluster.argocd(
        "pausable",
        "suspended",
        "Suspended",
        "Suspended: suspended by spec.suspend; set it to false to resume from the newest "
        "checkpoint",
    )

    # edited while suspended: a training setting (config) and the image (pod template)
    cluster.patch_spec("pausable", {"training": {"learningRate": "1e-5"}, "image": "trainer:2"})
    cluster.patch_spec("pausable", {"suspend": False})
    pod = cluster.running_pods("pausable")[0]
    assert pod.spec.containers[0].image == "trainer:2"
    job = cluster.job("pausable")
    assert job is not None and job["metadata"]["uid"] != first_uid
    config = cluster.core.read_namespaced_config_map("pausable-config", cluster.namespace)
    assert json.loads(config.data["config.json"])["spec"]["training"]["learningRate"] == "1e-5"
    status = cluster.wait_state("pausable", "Running")
    assert status["restarts"] == 0, "a suspend is not a restart"


def test_kueue_job_is_created_suspended_and_left_to_kueue(
    operator: Operator, cluster: Cluster
) -> None:
    cluster.create("queued", {**GPU_JOB, "scheduling": {"queueName": "team-a"}})
    status = cluster.wait_state("queued", "Queued")
    queued = next(c for c in status["conditions"] if c["type"] == "Queued")
    # Until Kueue's controller (session-wide, once tests/cluster/test_kueue.py started it)
    # has made a Workload, the operator says it waits for admission; then it copies
    # Kueue's own reason: this queue does not exist.
    waits = r"WaitingForAdmission: waiting for Kueue to admit it \(team-a\)"
    refused = r"Inadmissible: Kueue \(team-a\): LocalQueue team-a doesn't exist"
    assert queued["reason"] in ("WaitingForAdmission", "Inadmissible")
    cluster.argocd(
        "queued", "queued-kueue-no-workload", "Progressing", rf"Queued: ({waits}|{refused})"
    )
    job = cluster.job("queued")
    assert job is not None and job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"

    # Admission itself is Kueue's: tests/cluster/test_kueue.py and tests/e2e/test_kueue.py
    # run its controller (session-wide, so an imitation here would race it).


def test_multi_node_is_an_indexed_job_with_a_service(operator: Operator, cluster: Cluster) -> None:
    cluster.create("wide", {"resources": {"nodes": 2, "gpus": 8, "gpuType": H100}})
    pods = cluster.running_pods("wide", count=2)
    job = cluster.job("wide")
    assert job is not None
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 2)
    service = cluster.core.read_namespaced_service("wide-nodes", cluster.namespace)
    assert service.spec.cluster_ip == "None"
    ranks = set()
    for pod in pods:
        index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        ranks.add(index)
        assert pod.spec.hostname == f"wide-{index}"
        assert pod.spec.subdomain == "wide-nodes"
        env = {e.name: e for e in pod.spec.containers[0].env}
        assert env["PET_NNODES"].value == "2" and env["PET_NPROC_PER_NODE"].value == "8"
        assert env["PET_MASTER_ADDR"].value == "wide-0.wide-nodes"
        rank_source = env["PET_NODE_RANK"].value_from.field_ref.field_path
        assert "job-completion-index" in rank_source
    assert ranks == {"0", "1"}
    assert len({pod.spec.node_name for pod in pods}) == 2, "8 GPUs each: two H100 nodes"
    status = cluster.wait_state("wide", "Running")
    assert "2/2" in next(c for c in status["conditions"] if c["type"] == "Running")["message"]


def test_deleting_the_job_removes_its_children(operator: Operator, cluster: Cluster) -> None:
    cluster.create("short", {"resources": {"nodes": 2, "gpus": 1}})
    cluster.running_pods("short", count=2)
    cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, PLURAL, "short"
    )

    def gone() -> bool:
        configmaps = cluster.core.list_namespaced_config_map(
            cluster.namespace, label_selector=JOB_LABEL
        ).items
        services = cluster.core.list_namespaced_service(cluster.namespace).items
        return not (cluster.jobs() or configmaps or services or cluster.pods("short"))

    poll(gone, what="the garbage collector removed every child", timeout=TIMEOUT)


def test_ttl_after_finished_deletes_the_finetunejob(operator: Operator, cluster: Cluster) -> None:
    cluster.create("ephemeral", {**GPU_JOB, "ttlSecondsAfterFinished": 2})
    pod = cluster.running_pods("ephemeral")[0]
    cluster.end_trainer(pod.metadata.name, "Succeeded", 0, SUCCESS)
    cluster.wait_state("ephemeral", "Succeeded")

    def deleted() -> bool:
        try:
            cluster.ftj("ephemeral")
        except ApiException as error:
            return error.status == 404
        return False

    poll(deleted, what="the FineTuneJob is deleted after its TTL", timeout=TIMEOUT)


def test_operator_killed_mid_lifecycle_makes_no_duplicates(
    start_operator: Callable[..., Operator], cluster: Cluster, namespace: str
) -> None:
    args = (f"--namespace={namespace}", "--standalone")
    first = start_operator(*args)
    cluster.create("steady", GPU_JOB)
    cluster.running_pods("steady")
    before = cluster.wait_state("steady", "Running")
    first.kill()

    cluster.create("while-down", GPU_JOB)  # arrives while no operator runs
    second = start_operator(*args)
    cluster.running_pods("while-down")
    cluster.wait_state("while-down", "Running")
    after = cluster.status("steady")
    assert after["conditions"] == before["conditions"], "status kept, times unchanged"
    assert cluster.jobs() == ["steady", "while-down"]
    assert len(cluster.pods("steady")) == 1
    assert "created Job steady" not in second.log()


def test_two_replicas_only_one_acts(
    start_operator: Callable[..., Operator], cluster: Cluster, namespace: str
) -> None:
    cluster.custom.create_namespaced_custom_object(
        "kopf.dev",
        "v1",
        namespace,
        "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "kubetune"}},
    )
    args = (f"--namespace={namespace}", "--peering=kubetune")
    low = start_operator(*args, "--peering-priority=10", name="low")
    high = start_operator(*args, "--peering-priority=20", name="high")
    poll(lambda: "Pausing operations" in low.log(), what="the low-priority replica pauses")
    cluster.create("solo", GPU_JOB)
    cluster.wait_state("solo", "Running")
    assert cluster.jobs() == ["solo"]
    assert "created Job solo" in high.log()
    assert "created Job solo" not in low.log()


def test_progress_is_read_from_the_trainers_metrics(
    start_operator: Callable[..., Operator], cluster: Cluster, namespace: str
) -> None:
    """The pod's IP is set to loopback, where the trainer's own metrics class serves."""
    metrics = TrainerMetrics()
    for gauge, value in {"step": 50, "total_steps": 200, "epoch": 0.5, "loss": 1.25}.items():
        metrics.set(gauge, value)
    port = metrics.serve(free_port())
    start_operator(
        f"--namespace={namespace}",
        "--standalone",
        f"--pod-annotation={TEST_PHASE_ANNOTATION}=Pending",  # KWOK leaves the status to us
        f"--trainer-metrics-port={port}",
        "--progress-interval=1",
    )
    cluster.create("watched", GPU_JOB)

    def bound() -> Any | None:
        pods = [p for p in cluster.pods("watched") if p.spec.node_name]
        return pods[0] if pods else None

    pod = poll(bound, what="the pod is bound", timeout=TIMEOUT)
    # Bound, its container not started: a step every job passes through, which the
    # status shows once it lasts (kubetune.controller.pacing).
    poll(
        lambda: cluster.condition("watched", "Running")["reason"] == "Starting",
        what="the status says the trainer is starting",
        timeout=TIMEOUT,
    )
    assert cluster.status("watched")["state"] == "Pending"
    cluster.argocd(
        "watched", "pending-starting", "Progressing", r"Starting: 0/1 node\(s\) training"
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cluster.core.patch_namespaced_pod_status(
        pod.metadata.name,
        cluster.namespace,
        {
            "status": {
                "phase": "Running",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": now,
                "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "image": "trainer:test",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                ],
            }
        },
    )
    progress = poll(
        lambda: cluster.status("watched").get("progress"),
        what="status.progress is set",
        timeout=TIMEOUT,
    )
    assert (progress["step"], progress["totalSteps"], progress["percent"]) == (50, 200, 25)
    assert progress["loss"] == 1.25 and progress["epoch"] == 0.5
    assert progress["updatedAt"]
    cluster.argocd(
        "watched", "running-with-progress", "Progressing", r"Running: step 50/200 \(25%\)"
    )


def test_interrupted_trainer_is_retried_without_counting_and_restarts_show(
    operator: Operator, cluster: Cluster
) -> None:
    cluster.create("preempted", {**GPU_JOB, "backoffLimit": 0})
    first = cluster.running_pods("preempted")[0]
    interrupted = trainer_summary("Interrupted", "Interrupted", "SIGTERM: checkpoint-40 saved", 5)
    cluster.end_trainer(first.metadata.name, "Failed", 5, interrupted)

    def replaced() -> bool:
        running = [p for p in cluster.pods("preempted") if p.status.phase == "Running"]
        return bool(running) and running[0].metadata.name != first.metadata.name

    poll(replaced, what="a new trainer pod runs (backoffLimit 0 not spent)", timeout=TIMEOUT)
    status = cluster.wait_state("preempted", "Running")
    assert status["restarts"] == 1


def test_active_deadline_fails_the_job_with_its_reason(
    operator: Operator, cluster: Cluster
) -> None:
    cluster.create("slow", {**GPU_JOB, "activeDeadlineSeconds": 3})
    status = cluster.wait_state("slow", "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert status["completionTime"]
    cluster.argocd("slow", "failed-deadline-exceeded", "Degraded", r"DeadlineExceeded: .+")


def test_a_crash_without_a_summary_fails_with_the_jobs_reason_and_the_output(
    operator: Operator, cluster: Cluster
) -> None:
    """A trainer killed before it could write its summary (a segfault, a kill -9): the
    Job's own reason, and whatever the container left as its termination message."""
    cluster.create("crashed", {**GPU_JOB, "backoffLimit": 0})
    pod = cluster.running_pods("crashed")[0]
    annotations = {
        TEST_PHASE_ANNOTATION: "Failed",
        TEST_EXIT_CODE_ANNOTATION: "139",
        TEST_TERMINATION_MESSAGE_ANNOTATION: "Fatal Python error: Segmentation fault",
    }
    cluster.core.patch_namespaced_pod(
        pod.metadata.name, cluster.namespace, {"metadata": {"annotations": annotations}}
    )
    status = cluster.wait_state("crashed", "Failed")
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"].endswith("last output: Fatal Python error: Segmentation fault")
    cluster.argocd(
        "crashed",
        "failed-backoff-limit",
        "Degraded",
        r"BackoffLimitExceeded: .+; last output: Fatal Python error: Segmentation fault",
    )
