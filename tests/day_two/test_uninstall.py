"""``helm uninstall`` under running jobs, then deleting a job and its namespace (issue 19,
item 4). Last in the package: it removes the release the rollout test used.

The operator puts no finalizer on a FineTuneJob (only index and event handlers, see
:mod:`kubetune.controller.settings`) and removes the ``kubetune.io/finalizer`` that
versions with a per-job daemon left. Without an operator nothing could remove a
finalizer, so a job carrying one would never go, nor its namespace. What must hold after
``helm uninstall --wait`` (CRDs kept, ``crds.keep``):

* no FineTuneJob carries a finalizer, including one created with the old finalizer, as
  an earlier version left its jobs;
* the trainer pod keeps running and training (its SIGTERM checkpoint is past the step
  its status showed), and nobody writes its status;
* deleting the job removes it at once and its children (Job, ConfigMap, pods) through
  owner references; the trainer gets SIGTERM and writes a checkpoint, which stays in S3
  (the operator never deletes output, and nothing else does);
* deleting the namespace, with a job still running in it, completes.

The times are printed; the bounds asserted are generous (a stuck object never goes).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.cluster import ControlPlane
from devenv.s3 import S3Server
from tests.chaos.chaos import Cluster, wait_until
from tests.chaos.conftest import kwok_manifest, output_uri, s3_keys
from tests.chart import helm
from tests.day_two.conftest import TRAINER, operator_pods, start_trainer
from tests.e2e.conftest import RELEASE, RELEASE_NAMESPACE

pytestmark = [pytest.mark.e2e, pytest.mark.node]

OLDER = "left-by-an-older-version"
OLD_FINALIZER = "kubetune.io/finalizer"
#: Seconds without an operator in which the trainer's status must not change.
UNWATCHED = 5.0
#: Bounds on deletion: the trainer's grace period (60 s) plus the garbage collector's and
#: the namespace controller's passes; a finalizer nobody removes exceeds any of them.
DELETE_BOUND = 120.0
#: The operator pod's terminationGracePeriodSeconds (the chart leaves Kubernetes' default).
OPERATOR_GRACE = 30.0
_COMPLETE = re.compile(r"^checkpoints/step-(\d+)/COMPLETE$")


def _timed(check: Any, what: str, timeout: float = DELETE_BOUND) -> float:
    started = time.monotonic()
    wait_until(check, what, timeout)
    return time.monotonic() - started


def _namespace_gone(kube: Any, name: str) -> bool:
    try:
        client.CoreV1Api(kube).read_namespace(name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_uninstall_leaves_no_finalizer_and_a_job_and_its_namespace_can_be_deleted(
    day_two_plane: ControlPlane, day_two_kube: Any, day_two_cluster: Cluster, s3: S3Server
) -> None:
    cp, cluster = day_two_plane, day_two_cluster
    namespace = cluster.namespace
    start_trainer(cluster)
    older = kwok_manifest(OLDER)
    older["metadata"]["finalizers"] = [OLD_FINALIZER]
    cluster.create(older)
    cluster.running_pod(OLDER)
    trainer_pod = cluster.running_pod(TRAINER)
    wait_until(
        lambda: ((cluster.ftj(TRAINER) or {}).get("status") or {}).get("progress", {}).get("step"),
        f"{TRAINER} has progress",
        240,
    )

    started = time.monotonic()
    helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait", env=cp.env(), timeout=180)
    uninstalled = time.monotonic() - started
    stopped = uninstalled + _timed(
        lambda: not operator_pods(day_two_kube, terminating=True), "the operator pods are gone"
    )
    # The operator exits on its SIGTERM although its ServiceAccount and RBAC go with it:
    # kopf stops at credentials the API server refused (controller/login.py) instead of
    # logging in again until the kubelet kills the pod at its grace period.
    assert stopped < OPERATOR_GRACE, f"the operator pods went after {stopped:.1f}s"
    cp.kubectl("get", "crd", "finetunejobs.kubetune.io")  # kept: the jobs are still there
    finalizers = {f["metadata"]["name"]: f["metadata"].get("finalizers") for f in cluster.ftjs()}
    assert finalizers == {TRAINER: None, OLDER: None}, finalizers

    before = (cluster.ftj(TRAINER) or {})["status"]
    time.sleep(UNWATCHED)  # an absence (no status write) can only be watched for a while
    after = (cluster.ftj(TRAINER) or {})["status"]
    assert after == before, "the status changed with no operator installed"
    pods = cluster.pods(TRAINER)
    assert [(p.metadata.name, p.status.phase) for p in pods] == [(trainer_pod, "Running")]
    assert not pods[0].status.container_statuses[0].restart_count

    cluster.delete(TRAINER)
    job_gone = _timed(lambda: cluster.ftj(TRAINER) is None, f"{TRAINER} is gone")
    children_gone = job_gone + _timed(
        lambda: not cluster.children(TRAINER), f"{TRAINER}'s children are gone"
    )
    output = output_uri(namespace, TRAINER)
    checkpoints = [int(m[1]) for k in s3_keys(s3, output) if (m := _COMPLETE.match(k))]
    frozen = before["progress"]["step"]
    assert checkpoints and max(checkpoints) > frozen, (
        f"checkpoints {checkpoints}: none past step {frozen}, the last one the status showed"
    )

    cp.kubectl("delete", "namespace", namespace, "--wait=false")
    namespace_gone = _timed(
        lambda: _namespace_gone(day_two_kube, namespace), f"namespace {namespace} is gone"
    )
    kept = [int(m[1]) for k in s3_keys(s3, output) if (m := _COMPLETE.match(k))]
    assert kept == checkpoints, "the checkpoints went with the namespace"
    print(
        f"uninstall: helm uninstall --wait {uninstalled:.1f}s, operator pods gone after "
        f"{stopped:.1f}s; trainer trained on from step "
        f"{frozen} to its SIGTERM checkpoint at step {max(checkpoints)}; FineTuneJob gone in "
        f"{job_gone:.1f}s, its children in {children_gone:.1f}s; namespace (a job running in "
        f"it) gone in {namespace_gone:.1f}s"
    )
