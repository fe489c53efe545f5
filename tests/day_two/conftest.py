"""Fixtures of the day-two tests: the chart installed as a platform team installs it, in
a cluster of their own, then rolled, scaled and uninstalled under running jobs.

Why not the session's control plane: these tests restart, scale and uninstall the
release, and the release owns the CRDs (``crds.enabled``, the chart's default), which
the session's clusters share between releases (:data:`tests.chart.SHARED_CRDS`). Its
API server audit-logs Job creates, so duplicates are counted from the server's own record
(:data:`tests.chaos.chaos.AUDIT_POLICY`).

``day_two_plane`` (package)
    that control plane (KWOK GPU nodes beside the real node).
``day_two_node`` (package)
    a real node joined to it (the image store admits one node at a time: this package
    runs before ``tests/dev`` and ``tests/e2e`` in path order).
``day_two_kube`` (package)
    a Kubernetes API client for it.
``release`` (package)
    ``helm install`` of ``charts/kubetune`` with its defaults (CRDs owned and kept, peering,
    policy with admission) except :data:`VALUES`: two replicas, the operator on the real
    node, progress read and written every second, and trainer pods annotated so that the
    KWOK ones stay Running until a test ends them. Installed once: the rollout test
    rolls and scales it, the uninstall test (last in the package) removes it; the
    control plane is thrown away afterwards, so nothing uninstalls it again.
``day_two_namespace`` (function)
    a fresh ``day2-...`` namespace with the Secret ``s3-credentials``; deleted
    afterwards unless the test did.
``day_two_cluster`` (function)
    a :class:`tests.chaos.chaos.Cluster` for that namespace, the release installed and
    the quickstart dataset in S3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from kubernetes import client, config

from devenv import build
from devenv.cluster import TEST_PHASE_ANNOTATION, ControlPlane
from devenv.dev import s3_secret
from devenv.node import REAL_NODE_SELECTOR, REAL_NODE_TOLERATION, RealNode
from devenv.s3 import S3Server
from tests.chaos.chaos import AUDIT_POLICY, Cluster
from tests.chaos.conftest import real_manifest
from tests.e2e.conftest import RELEASE, RELEASE_NAMESPACE, helm_release
from tests.plugins.cluster import make_namespace

NAMESPACE_PREFIX = "day2-"
#: The chart's values here (everything else: the chart's defaults).
VALUES: dict[str, Any] = {
    "replicaCount": 2,
    "nodeSelector": REAL_NODE_SELECTOR,
    "tolerations": [REAL_NODE_TOLERATION],
    "progressIntervalSeconds": 1,
    "progressWriteIntervalSeconds": 1,
    # KWOK's trainer pods stay Running until the test ends them; the real kubelet
    # ignores the annotation.
    "trainer": {"podAnnotations": {TEST_PHASE_ANNOTATION: "Running"}},
}


@pytest.fixture(scope="package")
def day_two_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("day-two-plane")
    with ControlPlane(workdir, binaries=build.ensure_built(), audit_policy=AUDIT_POLICY) as cp:
        yield cp


@pytest.fixture(scope="package")
def day_two_node(
    day_two_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    with RealNode(day_two_plane, tmp_path_factory.mktemp("day-two-node")) as node:
        yield node


@pytest.fixture(scope="package")
def day_two_kube(day_two_plane: ControlPlane) -> Iterator[Any]:
    with closing(config.new_client_from_config(config_file=str(day_two_plane.kubeconfig))) as api:
        yield api


#: The real trainer job of each test.
TRAINER = "trainer"


def start_trainer(cluster: Cluster) -> None:
    """Create :data:`TRAINER`, a real-node job that trains until it is deleted (100,000
    steps) and checkpoints only when stopped (SIGTERM)."""
    cluster.create(real_manifest(cluster.namespace, TRAINER, 100_000))


def operator_pods(kube: Any, *, terminating: bool = False, ready: bool = False) -> set[str]:
    """Names of the operator's pods not being deleted (``terminating``: all of them, since
    a terminating operator may still act; ``ready``: only those passing the readiness
    probe)."""
    pods: Any = client.CoreV1Api(kube).list_namespaced_pod(
        RELEASE_NAMESPACE, label_selector="app.kubernetes.io/name=kubetune"
    )
    return {
        p.metadata.name
        for p in pods.items
        if (terminating or p.metadata.deletion_timestamp is None) and (not ready or _ready(p))
    }


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


@pytest.fixture(scope="package")
def release(
    day_two_plane: ControlPlane, day_two_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> str:
    seconds = helm_release(
        day_two_plane, "install", VALUES, tmp_path_factory.mktemp("day-two-release")
    )
    print(f"kubetune installed, two replicas Available, in {seconds:.1f}s")
    return RELEASE


@pytest.fixture
def day_two_namespace(
    day_two_plane: ControlPlane, s3: S3Server, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = make_namespace(day_two_plane, NAMESPACE_PREFIX, request, s3_secret(s3))
    yield name
    day_two_plane.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")


@pytest.fixture
def day_two_cluster(
    day_two_kube: Any, release: str, day_two_namespace: str, quickstart_data: str
) -> Cluster:
    """The test's namespace as :class:`tests.chaos.chaos.Cluster` sees it, with the
    release installed and the quickstart dataset in S3."""
    return Cluster(day_two_kube, day_two_namespace)
