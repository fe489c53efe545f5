"""The test control plane is real: scheduling, Jobs, KWOK lifecycles, RBAC, the GC.

These prove the properties later operator tests rely on: GPU requests and taints are
honoured by the real scheduler, Job pods finish through KWOK's stages, a pod can be
told how to end (phase, exit code, termination message), owner references cascade.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from devenv import versions
from devenv.cluster import (
    FAKE_NODE_ANNOTATION,
    TEST_EXIT_CODE_ANNOTATION,
    TEST_PHASE_ANNOTATION,
    TEST_TERMINATION_MESSAGE_ANNOTATION,
    ControlPlane,
    FakeNode,
)
from devenv.process import poll

pytestmark = pytest.mark.cluster

GPU_TOLERATION = client.V1Toleration(key="nvidia.com/gpu", operator="Exists")
H100 = "NVIDIA-H100-80GB-HBM3"


def _core(kube: Any) -> Any:
    """CoreV1Api, untyped: the client's Optional-everywhere models add only noise here."""
    return client.CoreV1Api(kube)


def _batch(kube: Any) -> Any:
    return client.BatchV1Api(kube)


def _pod(
    name: str,
    *,
    gpus: int = 0,
    tolerate: bool = True,
    annotations: dict[str, str] | None = None,
    node_selector: dict[str, str] | None = None,
    node_name: str | None = None,
) -> Any:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="kubetune/trainer:test",
                    resources=client.V1ResourceRequirements(limits=limits),
                )
            ],
            tolerations=[GPU_TOLERATION] if tolerate else None,
            node_selector=node_selector,
            node_name=node_name,
            restart_policy="Never",
        ),
    )


def _wait_phase(core: Any, ns: str, name: str, phase: str) -> Any:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, ns)
        return pod if pod.status.phase == phase else None

    pod: Any = poll(check, what=f"pod {ns}/{name} is {phase}", timeout=30)
    return pod


def _wait_unschedulable(core: Any, ns: str, name: str) -> Any:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, ns)
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False":
                return cond
        return None

    cond: Any = poll(check, what=f"{ns}/{name} is unschedulable", timeout=30)
    return cond


def test_server_reports_the_pinned_version(kubectl: Any) -> None:
    out = kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{versions.KUBERNETES_VERSION}"' in out


def test_fake_nodes_are_ready_with_gpus_labels_and_taints(kube: Any) -> None:
    nodes = {n.metadata.name: n for n in _core(kube).list_node().items}
    assert {"gpu-h100-0", "gpu-h100-1", "gpu-a100-0", "cpu-0"} <= set(nodes)
    for name in ("gpu-h100-0", "gpu-h100-1"):
        node = nodes[name]
        assert node.status.capacity["nvidia.com/gpu"] == "8"
        assert node.status.allocatable["nvidia.com/gpu"] == "8"
        assert node.metadata.labels["nvidia.com/gpu.product"] == H100
        assert [(t.key, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]
    assert nodes["gpu-a100-0"].metadata.labels["nvidia.com/gpu.product"] != H100
    assert "nvidia.com/gpu" not in nodes["cpu-0"].status.allocatable
    assert not nodes["cpu-0"].spec.taints
    for node in nodes.values():
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True", node.metadata.name


def test_gpu_pod_with_toleration_lands_on_an_h100_node(kube: Any, namespace: str) -> None:
    core = _core(kube)
    pod = _pod("one-gpu", gpus=1, node_selector={"nvidia.com/gpu.product": H100})
    core.create_namespaced_pod(namespace, pod)
    running = _wait_phase(core, namespace, "one-gpu", "Running")
    assert running.spec.node_name in {"gpu-h100-0", "gpu-h100-1"}
    assert running.status.container_statuses[0].ready


def test_sixteen_gpus_stay_pending_unschedulable(kube: Any, namespace: str) -> None:
    core = _core(kube)
    core.create_namespaced_pod(namespace, _pod("sixteen", gpus=16))
    cond = _wait_unschedulable(core, namespace, "sixteen")
    assert cond.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in cond.message
    pod = core.read_namespaced_pod("sixteen", namespace)
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None


def test_gpu_taint_keeps_pods_without_toleration_off_gpu_nodes(kube: Any, namespace: str) -> None:
    core = _core(kube)
    core.create_namespaced_pod(namespace, _pod("untolerated-gpu", gpus=1, tolerate=False))
    cond = _wait_unschedulable(core, namespace, "untolerated-gpu")
    assert "untolerated taint" in cond.message
    core.create_namespaced_pod(namespace, _pod("cpu-only", tolerate=False))
    assert _wait_phase(core, namespace, "cpu-only", "Running").spec.node_name == "cpu-0"


def _job(
    name: str,
    *,
    completions: int = 2,
    annotations: dict[str, str] | None = None,
    failure_policy: client.V1PodFailurePolicy | None = None,
) -> client.V1Job:
    template = _pod("unused", annotations=annotations)
    template.metadata = client.V1ObjectMeta(annotations=annotations)
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            completions=completions,
            parallelism=completions,
            backoff_limit=3,
            pod_failure_policy=failure_policy,
            template=client.V1PodTemplateSpec(metadata=template.metadata, spec=template.spec),
        ),
    )


def _wait_job_condition(batch: Any, ns: str, name: str, kind: str) -> Any:
    def check() -> Any:
        job = batch.read_namespaced_job_status(name, ns)
        for cond in job.status.conditions or []:
            if cond.type == kind and cond.status == "True":
                return job, cond
        return None

    return poll(check, what=f"job {ns}/{name} has condition {kind}", timeout=60)


def test_job_pods_succeed_through_kwok_stages(kube: Any, namespace: str) -> None:
    batch, core = _batch(kube), _core(kube)
    batch.create_namespaced_job(namespace, _job("two-pods", completions=2))
    job, _ = _wait_job_condition(batch, namespace, "two-pods", "Complete")
    assert job.status.succeeded == 2
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=two-pods").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Succeeded"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 0


def test_annotation_fails_a_pod_with_exit_code_and_message(kube: Any, namespace: str) -> None:
    core = _core(kube)
    message = '{"adapterUri": "s3://models/demo"}\nsecond line'
    annotations = {
        TEST_PHASE_ANNOTATION: "Failed",
        TEST_EXIT_CODE_ANNOTATION: "42",
        TEST_TERMINATION_MESSAGE_ANNOTATION: message,
    }
    core.create_namespaced_pod(namespace, _pod("fails", annotations=annotations))
    pod = _wait_phase(core, namespace, "fails", "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (42, message)


def test_pod_failure_policy_sees_the_exit_code(kube: Any, namespace: str) -> None:
    """What the operator's bad-config exit code relies on: FailJob on that exit code."""
    batch = _batch(kube)
    policy = client.V1PodFailurePolicy(
        rules=[
            client.V1PodFailurePolicyRule(
                action="FailJob",
                on_exit_codes=client.V1PodFailurePolicyOnExitCodesRequirement(
                    operator="In", values=[3]
                ),
            )
        ]
    )
    annotations = {TEST_PHASE_ANNOTATION: "Failed", TEST_EXIT_CODE_ANNOTATION: "3"}
    job = _job("bad-config", completions=1, annotations=annotations, failure_policy=policy)
    batch.create_namespaced_job(namespace, job)
    job, cond = _wait_job_condition(batch, namespace, "bad-config", "Failed")
    assert cond.reason == "PodFailurePolicy"
    assert job.status.failed == 1  # failed at once, no retries


def test_running_annotation_keeps_a_job_pod_running(kube: Any, namespace: str) -> None:
    batch, core = _batch(kube), _core(kube)
    batch.create_namespaced_job(
        namespace, _job("long", completions=1, annotations={TEST_PHASE_ANNOTATION: "Running"})
    )

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=long").items
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = poll(running_pod, what="the job's pod runs", timeout=30)
    # A job created later completes: KWOK has had its chance to finish the first one.
    batch.create_namespaced_job(namespace, _job("short", completions=1))
    _wait_job_condition(batch, namespace, "short", "Complete")
    job = batch.read_namespaced_job_status("long", namespace)
    assert job.status.active == 1
    assert not job.status.succeeded
    assert core.read_namespaced_pod(pod.metadata.name, namespace).status.phase == "Running"


def test_pending_annotation_leaves_status_to_the_test(kube: Any, namespace: str) -> None:
    core = _core(kube)
    pod = _pod("manual", annotations={TEST_PHASE_ANNOTATION: "Pending"}, node_name="cpu-0")
    core.create_namespaced_pod(namespace, pod)
    core.create_namespaced_pod(namespace, _pod("automatic", node_name="cpu-0"))
    _wait_phase(core, namespace, "automatic", "Running")
    manual = core.read_namespaced_pod("manual", namespace)
    assert manual.status.phase == "Pending"
    assert manual.status.pod_ip is None
    # The test writes the status itself, as a kubelet would.
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    core.patch_namespaced_pod_status("manual", namespace, status)
    assert core.read_namespaced_pod("manual", namespace).status.phase == "Running"


def test_kwok_leaves_nodes_without_its_annotation_alone(
    control_plane: ControlPlane, kube: Any
) -> None:
    """A real kubelet's node (no ``kwok.x-k8s.io/node`` annotation) is never taken over."""
    core = _core(kube)
    unmanaged = FakeNode("not-kwok").manifest()
    del unmanaged["metadata"]["annotations"][FAKE_NODE_ANNOTATION]
    del unmanaged["status"]
    control_plane.request("POST", "/api/v1/nodes", unmanaged)
    managed = FakeNode("kwok-managed")
    try:
        control_plane.add_node(managed)  # waits until KWOK reports it Ready
        conditions = core.read_node("not-kwok").status.conditions or []
        assert not [c for c in conditions if c.type == "Ready"], conditions
    finally:
        core.delete_node("not-kwok")
        core.delete_node(managed.name)


def test_deleting_an_owner_deletes_owned_objects(kube: Any, namespace: str) -> None:
    core = _core(kube)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref])),
    )
    core.create_namespaced_pod(
        namespace,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="owned-pod", owner_references=[ref]),
            spec=_pod("x").spec,
        ),
    )
    core.delete_namespaced_config_map(
        "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
    )

    def gone() -> bool:
        cms = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        pods = core.list_namespaced_pod(namespace).items
        return "owned" not in cms and not pods

    poll(gone, what="the garbage collector removed the owned objects", timeout=60)


def test_rbac_is_enforced(kubectl: Any, namespace: str) -> None:
    sa = f"system:serviceaccount:{namespace}:default"
    out = kubectl("auth", "can-i", "create", "pods", "-n", namespace, f"--as={sa}", check=False)
    assert out.stdout.strip() == "no"
    assert kubectl("auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() == "yes"
