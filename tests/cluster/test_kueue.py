"""Kueue in the test control plane: flavors place jobs, quota queues them.

Kueue v0.17.0 is built from the Go module proxy (tests/cluster/external.py) and runs as
a local process with the admin kubeconfig (tests/plugins/kueue.py); its CRDs come from
the same module. Two ResourceFlavors carry the fake nodes' GPU products as nodeLabels (an
H100 and an A100 flavor, 8 GPUs of each in one ClusterQueue); of three 8-GPU
FineTuneJobs, Kueue admits one per flavor, whose pods then select and run on that
flavor's nodes (KWOK keeps them Running), and the third stays Queued with Kueue's own
explanation in its status until a running job finished. A preemption by a
higher-priority workload, with a real trainer that checkpoints and resumes, is in
tests/e2e/test_kueue.py.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import GPU_PRODUCT_LABEL, TEST_PHASE_ANNOTATION, ControlPlane
from devenv.process import Process, poll
from tests import argocd_health
from tests.cases.manifests import valid_manifest
from tests.plugins.kueue import Apply


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
            # A worktree's sources run instead of the installed ones (as the suite's own).
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
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


#: The fake nodes' GPU products (devenv.cluster.DEFAULT_NODES): one flavor each.
FLAVORS = {"h100": "NVIDIA-H100-80GB-HBM3", "a100": "NVIDIA-A100-SXM4-40GB"}


def _queues(namespace: str, suffix: str) -> list[dict[str, Any]]:
    """An H100 and an A100 ResourceFlavor (nodeLabels: the GPU product), a ClusterQueue
    with 8 GPUs of each, and the LocalQueue ``gpu-team``."""
    flavors = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": f"{name}-{suffix}"},
            "spec": {"nodeLabels": {GPU_PRODUCT_LABEL: product}},
        }
        for name, product in FLAVORS.items()
    ]
    quota = [
        {"name": "cpu", "nominalQuota": "1000"},
        {"name": "memory", "nominalQuota": "10Ti"},
        {"name": "nvidia.com/gpu", "nominalQuota": 8},
    ]
    return [
        *flavors,
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": f"gpus-{suffix}"},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                        "flavors": [
                            {"name": f"{name}-{suffix}", "resources": quota} for name in FLAVORS
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "gpu-team", "namespace": namespace},
            "spec": {"clusterQueue": f"gpus-{suffix}"},
        },
    ]


def _pods(control_plane: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"kubetune.io/job={name}"
    found = control_plane.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
    )
    return list(found["items"])


def test_flavors_place_jobs_by_their_node_labels_and_a_third_waits_with_kueues_reason(
    kueue: Process,
    kueue_namespace: str,
    operator: Process,
    control_plane: ControlPlane,
    apply: Apply,
) -> None:
    namespace = kueue_namespace
    apply(_queues(namespace, secrets.token_hex(2)))
    names = ["first", "second", "third"]
    for name in names:
        manifest = valid_manifest(name)
        manifest["metadata"]["namespace"] = namespace
        manifest["spec"]["resources"] = {"gpus": 8}  # no gpuType: the flavor decides
        manifest["spec"]["scheduling"] = {"queueName": "gpu-team"}
        apply([manifest])

    def states() -> dict[str, str]:
        return {
            n: str(_ftj(control_plane, namespace, n).get("status", {}).get("state")) for n in names
        }

    try:
        poll(
            lambda: sorted(states().values()) == ["Queued", "Running", "Running"] or None,
            what="two jobs Running (one per flavor), one Queued",
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
    running = sorted(n for n, s in current.items() if s == "Running")
    (queued,) = (n for n, s in current.items() if s == "Queued")

    # Admission injected each flavor's nodeLabels: the pods select, and run on, its nodes.
    products = set()
    for name in running:
        (pod,) = _pods(control_plane, namespace, name)
        product = pod["spec"]["nodeSelector"][GPU_PRODUCT_LABEL]
        node = control_plane.request("GET", f"/api/v1/nodes/{pod['spec']['nodeName']}")
        assert node["metadata"]["labels"][GPU_PRODUCT_LABEL] == product
        products.add(product)
    assert products == set(FLAVORS.values()), "one job per flavor"

    # The third waits, and its status says why in Kueue's words, copied from the Workload.
    job = control_plane.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{queued}")
    assert job["spec"]["suspend"] is True
    reserved = poll(
        lambda: _kueue_reason(control_plane, namespace, job["metadata"]["uid"]),
        what="Kueue explains why the Workload waits",
        timeout=30,
    )
    assert reserved["status"] == "False" and reserved["reason"] == "Pending", reserved
    assert "insufficient unused quota for nvidia.com/gpu" in reserved["message"], reserved
    condition = poll(
        lambda: (
            (c := _condition(_ftj(control_plane, namespace, queued), "Queued"))
            and c["message"].startswith("Kueue (gpu-team): ")
            and c
        ),
        what="the Queued condition carries Kueue's message",
        timeout=30,
    )
    assert condition["status"] == "True" and condition["reason"] == "WaitingForAdmission"
    assert condition["message"] == f"Kueue (gpu-team): {reserved['message']}"
    argocd_health.check(
        _ftj(control_plane, namespace, queued),
        "queued-kueue",
        "Progressing",
        r"Queued: WaitingForAdmission: Kueue \(gpu-team\): couldn't assign flavors to pod set "
        r"main: .*insufficient unused quota for nvidia.com/gpu.*",
    )

    # Let a running job's pod finish; Kueue frees its quota and admits the third.
    done = running[0]
    for pod in _pods(control_plane, namespace, done):
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
        lambda: states()[done] == "Succeeded" and states()[queued] == "Running",
        what=f"{done} Succeeded and {queued} Running",
        timeout=90,
        interval=0.5,
    )


def test_kueue_webhooks_are_live_and_accept_the_operators_jobs(
    kueue: Process, kueue_namespace: str, control_plane: ControlPlane
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
            "namespace": kueue_namespace,
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
        "POST", f"/apis/batch/v1/namespaces/{kueue_namespace}/jobs", job
    )
    assert created["spec"]["suspend"] is True
