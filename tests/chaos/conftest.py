"""Fixtures of the fault tests: a control plane of their own, a real node, an operator
process that can be SIGKILLed.

Why not the session's control plane: these tests restart kube-apiserver and
kube-controller-manager, stop the kubelet, and need the node-failure timeouts short (the
controller-manager marks a silent node NotReady after 20 s instead of 40, and pods
tolerate an unreachable node for 10 s instead of 300), so they get a cluster nobody else
uses. Its API server audit-logs Job creates (:data:`tests.chaos.chaos.AUDIT_POLICY`).

``chaos_plane`` (package)
    that control plane, with the FineTuneJob CRD installed.
``chaos_node`` (package)
    a real node joined to it (the image store admits one node at a time: the e2e
    package's node is not running while this package runs).
``chaos_kube`` (package)
    a Kubernetes API client for it.
``operator_factory`` (package)
    starts ``kubetune operator`` as a host process watching ``chaos-*``: KWOK pods stay
    Running until a test ends them (``kubetune.io/test-phase: Running``), progress is read
    and written every second, a stuck container fails its job after 20 s.
``chaos_namespace`` (function)
    a fresh ``chaos-...`` namespace with the Secret ``s3-credentials`` (S3 as pods reach it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import config

from devenv import build
from devenv.cluster import TEST_PHASE_ANNOTATION, ControlPlane
from devenv.dev import BUCKET, install_crd, s3_secret, start_operator
from devenv.node import RealNode
from devenv.process import Process
from devenv.s3 import S3Server
from tests.cases.jobs import quickstart_on_real_node
from tests.cases.manifests import merge, valid_manifest
from tests.chaos.chaos import AUDIT_POLICY
from tests.plugins.cluster import make_namespace

NAMESPACE_PREFIX = "chaos-"
START_TIMEOUT = 20
#: Node-failure timeouts short enough for a test (see the module docstring).
APISERVER_FLAGS = (
    "--default-not-ready-toleration-seconds=10",
    "--default-unreachable-toleration-seconds=10",
)
CONTROLLER_MANAGER_FLAGS = ("--node-monitor-grace-period=20s",)


@pytest.fixture(scope="package")
def chaos_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(
        tmp_path_factory.mktemp("chaos-plane"),
        binaries=build.ensure_built(),
        audit_policy=AUDIT_POLICY,
        apiserver_flags=APISERVER_FLAGS,
        controller_manager_flags=CONTROLLER_MANAGER_FLAGS,
    )
    cp.start()
    try:
        install_crd(cp)
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="package")
def chaos_node(
    chaos_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    node = RealNode(chaos_plane, tmp_path_factory.mktemp("chaos-node"))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="package")
def chaos_kube(chaos_plane: ControlPlane) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=str(chaos_plane.kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="package")
def operator_factory(
    chaos_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Process]]:
    logs = tmp_path_factory.mktemp("chaos-operator")
    started: list[Process] = []

    def start() -> Process:
        proc, _ = start_operator(
            chaos_plane,
            logs / "operator.log",  # appended to: one log across every restart
            f"--namespace={NAMESPACE_PREFIX}*",
            "--standalone",
            f"--pod-annotation={TEST_PHASE_ANNOTATION}=Running",
            "--progress-interval=1",
            "--progress-write-interval=1",
            f"--start-timeout={START_TIMEOUT}",
        )
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def chaos_namespace(
    chaos_plane: ControlPlane, s3: S3Server, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = make_namespace(chaos_plane, NAMESPACE_PREFIX, request, s3_secret(s3))
    try:
        yield name
    finally:
        chaos_plane.request("DELETE", f"/api/v1/namespaces/{name}")


def kwok_manifest(name: str) -> dict[str, Any]:
    """A job for a KWOK GPU node (its trainer is imitated)."""
    return merge(valid_manifest(name), {"spec": {"resources": {"gpus": 1}}})


def real_manifest(namespace: str, name: str, steps: int) -> dict[str, Any]:
    """A trainer job on the real node that checkpoints only when stopped (SIGTERM)."""
    manifest = quickstart_on_real_node(name, output_uri(namespace, name), maxSteps=steps)
    manifest["spec"]["checkpoints"] = {"intervalSteps": 1000}
    return manifest


def output_uri(namespace: str, name: str) -> str:
    return f"s3://{BUCKET}/chaos/{namespace}/{name}"


def s3_keys(s3: S3Server, uri: str) -> list[str]:
    prefix = uri.removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/"
    listed = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"][len(prefix) :] for o in listed.get("Contents", [])]
