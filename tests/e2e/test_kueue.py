"""Kueue preempts a training job for a higher-priority workload; the job resumes from its
checkpoint once Kueue admits it again. Every part real: Kueue v0.17.0's controller and
webhooks, the operator from its image, a real trainer in a container on the real node.

One GPU of quota in a ClusterQueue that preempts lower priorities: a FineTuneJob at a low
PriorityClass trains; a plain batch Job at a high one arrives in the same queue; Kueue
evicts the FineTuneJob's Workload and suspends its Job, the kubelet SIGTERMs the trainer,
which saves and uploads a checkpoint; the FineTuneJob shows Kueue's reason (Preempted)
while it waits; once the other Job finished, Kueue admits it again and the new pod
resumes from that checkpoint and trains to the end.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from devenv.images import TRAINER
from devenv.node import GPU_RESOURCE, REAL_NODE_SELECTOR, REAL_NODE_TOLERATION
from devenv.process import Process
from tests import argocd_health
from tests.cases.jobs import INTERRUPTIBLE_STEPS
from tests.cluster import external
from tests.e2e.conftest import E2E
from tests.plugins.kueue import Apply

pytestmark = pytest.mark.e2e

_RESUMED = re.compile(r"resuming from (\S+/checkpoints/step-(\d+)) \(step (\d+)\)")
QUEUE = "train"


@pytest.fixture
def priorities(control_plane: ControlPlane, apply: Apply) -> Iterator[dict[str, str]]:
    """A low and a high PriorityClass (cluster-scoped, so named per test)."""
    suffix = secrets.token_hex(2)
    names = {"low": f"kubetune-low-{suffix}", "high": f"kubetune-high-{suffix}"}
    apply(
        [
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
            }
            for name, value in ((names["low"], 100), (names["high"], 1000))
        ]
    )
    yield names
    for name in names.values():
        control_plane.kubectl("delete", "priorityclass", name, "--ignore-not-found")


def _queue(namespace: str, suffix: str) -> list[dict[str, Any]]:
    """One GPU of quota on the real node's flavor; higher priorities preempt lower."""
    flavor, cluster_queue = f"real-node-{suffix}", f"one-gpu-{suffix}"
    return [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": flavor},
            "spec": {"nodeLabels": REAL_NODE_SELECTOR, "tolerations": [REAL_NODE_TOLERATION]},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {},
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory", GPU_RESOURCE],
                        "flavors": [
                            {
                                "name": flavor,
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "100"},
                                    {"name": "memory", "nominalQuota": "100Gi"},
                                    {"name": GPU_RESOURCE, "nominalQuota": 1},
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
            "metadata": {"name": QUEUE, "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    ]


def _urgent_job(namespace: str, priority: str) -> dict[str, Any]:
    """The higher-priority workload: a plain Job asking for the one GPU for a while."""
    resources = {GPU_RESOURCE: "1", "cpu": "100m", "memory": "64Mi"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "urgent",
            "namespace": namespace,
            "labels": {"kueue.x-k8s.io/queue-name": QUEUE},
        },
        "spec": {
            "suspend": True,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "priorityClassName": priority,
                    "terminationGracePeriodSeconds": 1,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
                    "containers": [
                        {
                            "name": "urgent",
                            "image": TRAINER.ref,
                            "command": ["python", "-c", "import time; time.sleep(30)"],
                            "resources": {"requests": resources, "limits": resources},
                        }
                    ],
                }
            },
        },
    }


def _queued(e2e: E2E, name: str) -> dict[str, Any]:
    return e2e.condition(name, "Queued")


def test_preempted_by_a_higher_priority_workload_resumes_from_its_checkpoint(
    e2e: E2E,
    kueue: Process,
    apply: Apply,
    priorities: dict[str, str],
    control_plane: ControlPlane,
) -> None:
    labels = [f"{k}={v}" for k, v in external.KUEUE_TEST_NAMESPACE_LABEL.items()]
    control_plane.kubectl("label", "namespace", e2e.namespace, *labels)
    apply(_queue(e2e.namespace, secrets.token_hex(2)))

    manifest = e2e.manifest("low", maxSteps=INTERRUPTIBLE_STEPS)
    manifest["spec"]["resources"] |= {"gpus": 1}
    manifest["spec"]["scheduling"] |= {"queueName": QUEUE, "priorityClassName": priorities["low"]}
    manifest["spec"]["checkpoints"] = {"intervalSteps": 1000}  # only the SIGTERM checkpoint
    e2e.create(manifest)
    e2e.wait(
        lambda: int((e2e.ftj("low").get("status", {}).get("progress") or {}).get("step") or 0) >= 2,
        "low trains (step 2)",
    )
    (first,) = [p for p in e2e.pods("low") if p["status"].get("phase") == "Running"]

    apply([_urgent_job(e2e.namespace, priorities["high"])])
    preempted = e2e.wait(
        lambda: (c := _queued(e2e, "low")).get("reason") == "Preempted" and c,
        "low is Queued with Kueue's reason Preempted",
        timeout=120,
    )
    assert preempted["status"] == "True"
    assert preempted["message"].startswith(f"Kueue ({QUEUE}): Preempted to accommodate")
    assert e2e.ftj("low")["status"]["state"] == "Queued"
    argocd_health.check(
        e2e.ftj("low"),
        "queued-kueue-preempted",
        "Progressing",
        rf"Queued: Preempted: Kueue \({QUEUE}\): Preempted to accommodate a workload .+",
    )
    first_log = str(
        e2e.wait(
            lambda: (log := e2e.pod_log(first)) and "SIGTERM" in log and log,
            "the preempted trainer got SIGTERM",
        )
    )
    checkpoints = [k for k in e2e.s3_keys(e2e.output_uri("low")) if k.startswith("checkpoints/")]
    assert checkpoints, f"a checkpoint was uploaded before the pod stopped:\n{first_log[-2000:]}"

    status = e2e.wait_state("low", "Succeeded", "Failed", timeout=600)["status"]
    assert status["state"] == "Succeeded", status["conditions"]
    assert status["progress"]["step"] == INTERRUPTIBLE_STEPS
    pods = e2e.pods("low")
    assert first["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods}
    resumed = _RESUMED.search(e2e.pod_log(pods[-1]))
    assert resumed, "the re-admitted pod resumed from the checkpoint"
    assert resumed.group(1).startswith(f"{e2e.output_uri('low')}/checkpoints/")
    assert 2 <= int(resumed.group(3)) < INTERRUPTIBLE_STEPS
    urgent = control_plane.request("GET", f"/apis/batch/v1/namespaces/{e2e.namespace}/jobs/urgent")
    assert urgent["status"].get("succeeded") == 1, "the higher-priority Job ran in between"
