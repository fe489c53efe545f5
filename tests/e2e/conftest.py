"""Fixtures of the end-to-end tests: the pieces of ``kubetune dev`` on the session cluster.

``local_node`` (session)
    the node ``local-0`` (label ``kubetune.io/local-exec=true``, no GPUs, no taint)
    added to the session's control plane; pods land there with the node selector
    :data:`LOCAL_NODE_SELECTOR` (the session's ``cpu-0`` is a KWOK node whose pods
    "succeed" without running anything).
``pod_runner`` (session)
    a started :class:`devenv.podrunner.PodRunner` for ``local-0`` only (other
    tests add local-exec nodes whose pods must be left alone).
``e2e_operator`` (session)
    ``kubetune operator`` as a child process watching the namespaces ``e2e-*`` only
    (operator cluster tests run their own operators in their own namespaces), reading
    progress every second; the FineTuneJob CRD is installed first.
``e2e`` (function)
    an :class:`E2E` helper for a fresh namespace ``e2e-...`` holding the Secret
    ``s3-credentials``, with the quickstart dataset in ``s3://kubetune/quickstart-data/``.

``KUBETUNE_E2E_CRD=FILE`` applies that CRD file instead of the generated one (for a
CRD under development).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client

from devenv.cluster import ControlPlane, FakeNode
from devenv.dev import (
    BUCKET,
    DATA_PREFIX,
    EXAMPLES,
    install_crd,
    s3_secret,
    start_operator,
    upload_dir,
)
from devenv.podrunner import PodRunner
from devenv.process import Process, free_port, poll
from devenv.s3 import S3Server
from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.render.labels import JOB_LABEL

T = TypeVar("T")

LOCAL_NODE = FakeNode("local-0", cpu="16", memory="64Gi", local_exec=True)
LOCAL_NODE_SELECTOR = {"kubernetes.io/hostname": LOCAL_NODE.name}
NAMESPACE_PREFIX = "e2e-"


@pytest.fixture(scope="session")
def local_node(control_plane: ControlPlane) -> str:
    if LOCAL_NODE not in control_plane.nodes:
        control_plane.add_node(LOCAL_NODE)
    return LOCAL_NODE.name


@pytest.fixture(scope="session")
def pod_runner(
    control_plane: ControlPlane, local_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    workdir: Path = tmp_path_factory.mktemp("podrunner")
    with PodRunner(control_plane.kubeconfig, workdir, nodes=[local_node]) as runner:
        yield runner


@pytest.fixture(scope="session")
def e2e_operator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    crd = os.environ.get("KUBETUNE_E2E_CRD")
    install_crd(control_plane, Path(crd) if crd else None)
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc, _ = start_operator(
        control_plane,
        log,
        f"--namespace={NAMESPACE_PREFIX}*",
        "--standalone",
        "--progress-interval=1",
        "--trainer-image=kubetune-trainer:local",
        # Not 9090: a process on the host's 0.0.0.0:9090 (another test's trainer) would
        # make the pods' 127.0.0.N:9090 binds fail.
        f"--trainer-metrics-port={free_port()}",
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def quickstart_data(s3: S3Server) -> str:
    upload_dir(s3, EXAMPLES / "quickstart-data", BUCKET, DATA_PREFIX)
    return f"s3://{BUCKET}/{DATA_PREFIX}"


class E2E:
    """One test's namespace: FineTuneJobs from the quickstart, pods, S3, logs."""

    def __init__(
        self,
        kube: Any,
        namespace: str,
        s3: S3Server,
        runner: PodRunner,
        operator: Process,
    ) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(kube)
        self.core = client.CoreV1Api(kube)
        self.s3 = s3
        self.runner = runner
        self.operator = operator

    # -- FineTuneJobs ------------------------------------------------------------------

    def manifest(self, name: str, **training: Any) -> dict[str, Any]:
        """The dev-cluster quickstart, made small, writing to its own S3 prefix."""
        manifest = yaml.safe_load((EXAMPLES / "quickstart-cluster.yaml").read_text())
        manifest["metadata"] = {"name": name}
        spec = manifest["spec"]
        spec["training"] |= {"batchSize": 4, "loggingSteps": 1, **training}
        spec["scheduling"] = {"nodeSelector": LOCAL_NODE_SELECTOR}
        spec["terminationGracePeriodSeconds"] = 60
        spec["output"]["uri"] = self.output_uri(name)
        return dict(manifest)

    def output_uri(self, name: str) -> str:
        return f"s3://{BUCKET}/e2e/{self.namespace}/{name}"

    def create(self, manifest: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, manifest
        )

    def ftj(self, name: str) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return dict(found)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        conditions = self.ftj(name).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind), {})

    def wait_state(self, name: str, *states: str, timeout: float = 180) -> dict[str, Any]:
        """The FineTuneJob once ``status.state`` is one of ``states``."""

        def check() -> dict[str, Any] | None:
            ftj = self.ftj(name)
            return ftj if ftj.get("status", {}).get("state") in states else None

        return self.wait(check, f"{name} is {'/'.join(states)}", timeout)

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 180) -> T:
        """:func:`poll`, with the operator's log tail in the error."""
        try:
            return poll(check, what=what, timeout=timeout, interval=0.5)
        except TimeoutError as e:
            tail = "\n".join(self.operator.log_file.read_text(errors="replace").splitlines()[-30:])
            raise TimeoutError(f"{e}\n--- operator log ---\n{tail}") from None

    # -- pods ------------------------------------------------------------------------------

    def pods(self, name: str) -> list[dict[str, Any]]:
        """The job's trainer pods (wire form), oldest first."""
        response: Any = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOB_LABEL}={name}", _preload_content=False
        )
        items = json.loads(response.data)["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def pod_log(self, pod: dict[str, Any]) -> str:
        path = self.runner.log_file(self.namespace, pod["metadata"]["name"])
        return path.read_text(errors="replace") if path else ""

    # -- S3 --------------------------------------------------------------------------------

    def s3_keys(self, uri: str) -> list[str]:
        prefix = uri.removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/"
        response = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"][len(prefix) :] for o in response.get("Contents", [])]

    def s3_json(self, uri: str) -> Any:
        key = uri.removeprefix(f"s3://{BUCKET}/")
        return json.loads(self.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture
def e2e(
    control_plane: ControlPlane,
    kube: Any,
    s3: S3Server,
    pod_runner: PodRunner,
    e2e_operator: Process,
    quickstart_data: str,
    request: pytest.FixtureRequest,
) -> Iterator[E2E]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{NAMESPACE_PREFIX}{base}-{secrets.token_hex(3)}"
    control_plane.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    poll(
        lambda: control_plane.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        what=f"serviceaccount {name}/default exists",
    )
    control_plane.request("POST", f"/api/v1/namespaces/{name}/secrets", s3_secret(s3))
    started = time.monotonic()
    try:
        yield E2E(kube, name, s3, pod_runner, e2e_operator)
    finally:
        print(f"{request.node.name}: {time.monotonic() - started:.1f}s")
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
