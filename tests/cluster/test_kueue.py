"""Kueue in the test control plane: GPU quota admits one 8-GPU FineTuneJob at a time.

Kueue v0.17.0 is built from the Go module proxy (tests/cluster/external.py) and runs as
a local process with the admin kubeconfig; its CRDs come from the same module. A
ClusterQueue with 8 ``nvidia.com/gpu`` and a LocalQueue back two FineTuneJobs of 8 GPUs
each: the operator creates both Jobs suspended with the queue label, Kueue admits one
(it runs; KWOK keeps its pod Running) while the other stays Queued with Kueue's reason
in its condition, and the second runs once the first finished.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.certs import CertificateAuthority
from devenv.cluster import TEST_PHASE_ANNOTATION, ControlPlane
from devenv.process import Process, free_port, poll, wait_for
from tests.cases.manifests import valid_manifest
from tests.chart import crd_documents
from tests.cluster import external


def _apply(control_plane: ControlPlane, docs: list[dict[str, Any]]) -> None:
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )


@pytest.fixture(scope="module")
def kueue(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    binary = external.kueue_binary()
    crds = external.kueue_crds() + crd_documents()
    _apply(control_plane, crds)
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{c['metadata']['name']}" for c in crds],
    )
    if control_plane.kubectl("get", "namespace", "kueue-system", check=False).returncode:
        control_plane.kubectl("create", "namespace", "kueue-system")
    workdir = tmp_path_factory.mktemp("kueue")
    ca = CertificateAuthority(workdir / "pki")
    serving = ca.issue("serving", "kueue", dns_names=("localhost",), ips=("127.0.0.1",))
    for directory in (workdir / "webhook-certs", external.KUEUE_METRICS_CERT_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tls.crt").write_bytes(serving.cert.read_bytes())
        (directory / "tls.key").write_bytes(serving.key.read_bytes())
    health, webhook = free_port(), free_port()
    config = external.kueue_config(workdir, webhook_port=webhook, health_port=health)
    proc = Process(
        "kueue",
        [
            str(binary),
            f"--config={config}",
            f"--kubeconfig={control_plane.kubeconfig}",
            # The on-demand visibility API server wants certificates
            # under /visibility; the test reads Workload status instead.
            "--feature-gates=VisibilityOnDemand=false",
        ],
        workdir / "kueue.log",
    )

    def ready() -> bool:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2) as r:
            return bool(r.status == 200)

    webhooks = external.kueue_webhooks(webhook, ca.cert.read_bytes())
    try:
        wait_for(proc, ready, what="kueue /readyz", timeout=90)
        _apply(control_plane, webhooks)
        yield proc
    finally:
        for hook_config in webhooks:  # fail-closed webhooks must not outlive their server
            control_plane.kubectl(
                "delete",
                hook_config["kind"],
                hook_config["metadata"]["name"],
                "--ignore-not-found",
            )
        proc.stop()


@pytest.fixture
def queue_namespace(namespace: str, control_plane: ControlPlane) -> str:
    """The test namespace, opted into Kueue's Job webhooks."""
    labels = [f"{k}={v}" for k, v in external.KUEUE_TEST_NAMESPACE_LABEL.items()]
    control_plane.kubectl("label", "namespace", namespace, *labels)
    return namespace


@pytest.fixture
def operator(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Process]:
    """The operator (admin identity: RBAC is covered by the chart tests), pods kept
    Running by KWOK until the test lets them finish."""
    proc = Process(
        "operator",
        [
            str(Path(sys.executable).parent / "kubetune"),
            "operator",
            f"--namespace={namespace}",
            "--standalone",
            "--metrics-port=0",
            f"--pod-annotation={TEST_PHASE_ANNOTATION}=Running",
        ],
        tmp_path / "operator.log",
        env={
            "KUBECONFIG": str(control_plane.kubeconfig),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
    )
    try:
        yield proc
    finally:
        proc.stop()


def _ftj(control_plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return control_plane.request(
        "GET", f"/apis/kubetune.io/v1alpha1/namespaces/{namespace}/finetunejobs/{name}"
    )


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _kueue_reason(
    control_plane: ControlPlane, namespace: str, job_uid: str
) -> dict[str, Any] | None:
    """The QuotaReserved condition of the Workload Kueue created for the Job ``job_uid``."""
    workloads = control_plane.request(
        "GET", f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads"
    )["items"]
    for workload in workloads:
        if any(o["uid"] == job_uid for o in workload["metadata"].get("ownerReferences", [])):
            return _condition(workload, "QuotaReserved") or None
    return None


def test_gpu_quota_admits_one_job_and_queues_the_other(
    kueue: Process,
    queue_namespace: str,
    operator: Process,
    control_plane: ControlPlane,
    namespace: str,
) -> None:
    flavor, cq = f"h100-{secrets.token_hex(2)}", f"gpus-{secrets.token_hex(2)}"
    _apply(
        control_plane,
        [
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ResourceFlavor",
                "metadata": {"name": flavor},
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "ClusterQueue",
                "metadata": {"name": cq},
                "spec": {
                    "namespaceSelector": {},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                            "flavors": [
                                {
                                    "name": flavor,
                                    "resources": [
                                        {"name": "cpu", "nominalQuota": "1000"},
                                        {"name": "memory", "nominalQuota": "10Ti"},
                                        {"name": "nvidia.com/gpu", "nominalQuota": 8},
                                    ],
                                }
                            ],
                        }
                    ],
                },
            },
            {
                "apiVersion": "kueue.x-k8s.io/v1beta2",
                "kind": "LocalQueue",
                "metadata": {"name": "gpu-team", "namespace": namespace},
                "spec": {"clusterQueue": cq},
            },
        ],
    )
    names = ["first", "second"]
    for name in names:
        manifest = valid_manifest(name)
        manifest["metadata"]["namespace"] = namespace
        manifest["spec"]["resources"] = {"gpus": 8}
        manifest["spec"]["scheduling"] = {"queueName": "gpu-team"}
        _apply(control_plane, [manifest])

    def states() -> dict[str, str]:
        return {
            n: str(_ftj(control_plane, namespace, n).get("status", {}).get("state")) for n in names
        }

    try:
        poll(
            lambda: sorted(states().values()) == ["Queued", "Running"] or None,
            what="one job Running, one Queued",
            timeout=90,
            interval=0.5,
        )
    except TimeoutError as e:
        raise AssertionError(
            f"{e}\n{states()}\n--- operator ---\n"
            f"{operator.log_file.read_text()[-3000:]}\n--- kueue ---\n"
            f"{kueue.log_file.read_text()[-3000:]}"
        ) from e
    current = states()
    running = next(n for n, s in current.items() if s == "Running")
    queued = next(n for n, s in current.items() if s == "Queued")
    queued_obj = _ftj(control_plane, namespace, queued)
    condition = _condition(queued_obj, "Queued")
    assert condition.get("status") == "True", queued_obj["status"]
    assert "Kueue" in condition.get("message", ""), condition
    job = control_plane.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{queued}")
    assert job["spec"]["suspend"] is True
    # Kueue's reason is on the Workload it made for the Job: quota, not an error.
    reserved = poll(
        lambda: _kueue_reason(control_plane, namespace, job["metadata"]["uid"]),
        what="Kueue explains why the Workload waits",
        timeout=30,
    )
    assert reserved["status"] == "False" and reserved["reason"] == "Pending", reserved
    assert "insufficient unused quota for nvidia.com/gpu" in reserved["message"], reserved

    # Let the running job's pod finish; Kueue frees the quota and admits the other.
    pods = control_plane.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=kubetune.io/job={running}"
    )
    for pod in pods["items"]:
        control_plane.kubectl(
            "annotate",
            "pod",
            pod["metadata"]["name"],
            "-n",
            namespace,
            "--overwrite",
            f"{TEST_PHASE_ANNOTATION}=Succeeded",
        )
    poll(
        lambda: states()[running] == "Succeeded" and states()[queued] == "Running",
        what=f"{running} Succeeded and {queued} Running",
        timeout=90,
        interval=0.5,
    )


def test_kueue_webhooks_are_live_and_accept_the_operators_jobs(
    kueue: Process, queue_namespace: str, control_plane: ControlPlane
) -> None:
    """The API server calls Kueue's webhooks on loopback: a Job that names a queue but
    was created unsuspended is suspended by Kueue's mutating webhook (the operator does
    not rely on it: it creates queued Jobs suspended, and those pass the validating
    webhook in the test above)."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "plain",
            "namespace": queue_namespace,
            "labels": {"kueue.x-k8s.io/queue-name": "gpu-team"},
        },
        "spec": {
            "suspend": False,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                }
            },
        },
    }
    created = control_plane.request(
        "POST", f"/apis/batch/v1/namespaces/{queue_namespace}/jobs", job
    )
    assert created["spec"]["suspend"] is True
