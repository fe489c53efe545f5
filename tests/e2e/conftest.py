"""Fixtures of the end-to-end tests: kubetune installed by its Helm chart, on a real node.

``real_node`` (package; tests/plugins/node.py)
    containerd + kubelet + kube-proxy + CoreDNS joined to the session's control plane,
    with the operator and trainer images in its image store.
``kubetune_release`` (package)
    ``helm install`` of ``charts/kubetune`` into ``kubetune-system`` with its defaults
    (cluster-wide, peering, restricted pod security, the images' default tags), except:
    the operator pod tolerates and selects the real node, reads and writes progress every
    second, and fails a job whose container waits for its image for :data:`START_TIMEOUT`
    seconds; its policy also admits the trainer image's other tags and the pause image
    (the fault tests' bad images); it runs at a high priority within its memory request.
    Ready when the Deployment is Available, that is when
    the operator container passed its readiness probe (kopf's health endpoint) in a real
    container.
``e2e`` (function)
    an :class:`E2E` helper for a fresh namespace ``e2e-...`` holding the Secrets
    ``s3-credentials`` (S3 at the host's pod-network address) and ``hf-token`` (a Hub
    token every job's trainer gets), with the quickstart dataset in
    ``s3://kubetune/quickstart-data/``. Before the namespace goes, every log, event,
    status, ConfigMap, termination message and ``manifest.json`` of the test is searched
    for those Secrets' values (:mod:`tests.secrets_scan`): a hit fails the test; so does
    one in the operator's log at the end of the package.

``KUBETUNE_E2E_CRD=FILE`` applies that CRD file instead of the generated one (for a
CRD under development).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from devenv.cluster import ControlPlane
from devenv.containerd import PAUSE_IMAGE
from devenv.dev import BUCKET, install_crd, s3_secret
from devenv.node import REAL_NODE_SELECTOR, REAL_NODE_TOLERATION, RealNode
from devenv.process import poll
from devenv.s3 import S3Server
from kubetune.render.labels import JOB_LABEL
from kubetune.render.pod import CONTAINER_NAME
from kubetune_contract.api import GROUP, PLURAL, VERSION
from tests.cases.jobs import quickstart_on_real_node
from tests.chart import CHART, SHARED_CRDS, apply_crds, helm, values_file
from tests.plugins.cluster import make_namespace
from tests.secrets_scan import hits, manifest_texts, namespace_texts

T = TypeVar("T")

HF_SECRET = "hf-token"
_HF_TOKEN = f"hf_{secrets.token_hex(16)}"


def _given(s3: S3Server) -> tuple[str, ...]:
    """Every credential value the end-to-end jobs are given."""
    return (s3.secret_key, _HF_TOKEN)


def _hf_secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": HF_SECRET},
        "stringData": {"HF_TOKEN": _HF_TOKEN},
    }


NAMESPACE_PREFIX = "e2e-"
RELEASE = "kubetune"
RELEASE_NAMESPACE = "kubetune-system"
OPERATOR = f"deployment/{RELEASE}"
#: Seconds a trainer container may wait for its image before its job fails.
START_TIMEOUT = 20
#: The operator's PriorityClass: when the kubelet runs short of memory (the eviction
#: test) it evicts the trainer, as on a platform that ranks its operator above jobs.
OPERATOR_PRIORITY = {
    "apiVersion": "scheduling.k8s.io/v1",
    "kind": "PriorityClass",
    "metadata": {"name": "kubetune-e2e-operator"},
    "value": 1000000,
    "description": "The e2e operator outranks trainer pods under node pressure.",
}
#: The chart's values for the end-to-end installation (everything else: defaults).
VALUES: dict[str, Any] = {
    "priorityClassName": OPERATOR_PRIORITY["metadata"]["name"],
    # Within its request, so the kubelet ranks it by priority, not by usage over request.
    "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}},
    "nodeSelector": REAL_NODE_SELECTOR,
    "tolerations": [REAL_NODE_TOLERATION],
    "trainer": {"startTimeoutSeconds": START_TIMEOUT},
    # The fault tests name images the node lacks or that cannot start a trainer.
    "policy": {"images": ["ghcr.io/kubetune/trainer:", PAUSE_IMAGE]},
    "progressIntervalSeconds": 1,
    "progressWriteIntervalSeconds": 1,
}


def operator_log(cp: ControlPlane, tail: int = 40) -> str:
    """The operator container's log, read through the API server and the kubelet."""
    proc = cp.kubectl(
        "logs", OPERATOR, "-n", RELEASE_NAMESPACE, f"--tail={tail}", check=False, timeout=30
    )
    return proc.stdout if proc.returncode == 0 else f"(no operator log: {proc.stderr.strip()})"


def _explain_release(cp: ControlPlane) -> str:
    pods = cp.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide", check=False).stdout
    described = cp.kubectl("describe", "pods", "-n", RELEASE_NAMESPACE, check=False).stdout
    return f"{pods}\n{described[-3000:]}\n--- operator log ---\n{operator_log(cp)}"


def rollout_status(cp: ControlPlane) -> float:
    """Wait until every replica of the operator runs the Deployment's newest template and
    is Available, that is its operator container passed the readiness probe (kopf's
    health endpoint) in a real container; the seconds that took."""
    started = time.monotonic()
    rollout = cp.kubectl(
        "rollout",
        "status",
        OPERATOR,
        "-n",
        RELEASE_NAMESPACE,
        "--timeout=180s",
        check=False,
        timeout=200,
    )
    if rollout.returncode != 0:
        raise AssertionError(
            f"the operator did not become Available:\n{rollout.stderr}\n{_explain_release(cp)}"
        )
    return time.monotonic() - started


def helm_release(
    cp: ControlPlane,
    verb: str,
    values: dict[str, Any],
    directory: Path,
    *args: str,
    chart: Path = CHART,
) -> float:
    """``helm install`` (or ``upgrade``: ``verb``) of ``chart`` as :data:`RELEASE` in
    :data:`RELEASE_NAMESPACE` with ``values`` (written to ``directory``) and ``args``;
    the seconds until the operator is Available."""
    started = time.monotonic()
    helm(
        verb,
        RELEASE,
        str(chart),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--values",
        str(values_file(values, directory)),
        *args,
        env=cp.env(),
        timeout=180,
    )
    rollout_status(cp)
    return time.monotonic() - started


@pytest.fixture(scope="package")
def kubetune_release(
    control_plane: ControlPlane,
    real_node: RealNode,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    # The chart's CRDs, shared with the session (the release installs none: SHARED_CRDS);
    # KUBETUNE_E2E_CRD replaces the FineTuneJob CRD with one under development.
    apply_crds(control_plane)
    if crd := os.environ.get("KUBETUNE_E2E_CRD"):
        install_crd(control_plane, Path(crd))
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(OPERATOR_PRIORITY))
    seconds = helm_release(
        control_plane, "install", VALUES, tmp_path_factory.mktemp("release"), *SHARED_CRDS
    )
    print(f"kubetune installed and Available in {seconds:.1f}s")
    try:
        yield RELEASE
        log = control_plane.kubectl("logs", OPERATOR, "-n", RELEASE_NAMESPACE, timeout=60).stdout
        leaked = hits({"operator log": log}, _given(s3))
        assert not leaked, f"secrets in the operator's log: {leaked}"
    finally:
        helm(
            "uninstall",
            RELEASE,
            "--namespace",
            RELEASE_NAMESPACE,
            "--wait",
            env=control_plane.env(),
            timeout=180,
            check=False,
        )


class E2E:
    """One test's namespace: FineTuneJobs from the quickstart, pods, S3, logs."""

    def __init__(self, cp: ControlPlane, kube: Any, namespace: str, s3: S3Server) -> None:
        self.cp = cp
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(kube)
        self.core = client.CoreV1Api(kube)
        self.batch = client.BatchV1Api(kube)
        self.s3 = s3

    # -- FineTuneJobs ------------------------------------------------------------------

    def manifest(self, name: str, **training: Any) -> dict[str, Any]:
        """The dev-cluster quickstart, made small, on the real node, writing to its own
        S3 prefix, with a Hub token in the trainer's environment."""
        manifest = quickstart_on_real_node(name, self.output_uri(name), **training)
        manifest["spec"]["model"]["credentialsSecret"] = HF_SECRET
        return manifest

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

    def progress_step(self, name: str) -> int:
        """``status.progress.step`` (0 before the first reading)."""
        return int((self.ftj(name).get("status", {}).get("progress") or {}).get("step") or 0)

    def batch_job(self, name: str) -> dict[str, Any] | None:
        """The FineTuneJob's batch/v1 Job, ``None`` when there is none."""
        try:
            found: Any = self.batch.read_namespaced_job(name, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found.to_dict())

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        conditions = self.ftj(name).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == kind), {})

    def wait_state(self, name: str, *states: str, timeout: float = 240) -> dict[str, Any]:
        """The FineTuneJob once ``status.state`` is one of ``states``."""

        def check() -> dict[str, Any] | None:
            ftj = self.ftj(name)
            return ftj if ftj.get("status", {}).get("state") in states else None

        return self.wait(check, f"{name} is {'/'.join(states)}", timeout)

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 240) -> T:
        """:func:`poll`, with the operator's log tail in the error."""
        try:
            return poll(check, what=what, timeout=timeout, interval=0.5)
        except TimeoutError as e:
            pods = self.cp.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False)
            raise TimeoutError(
                f"{e}\n--- pods ---\n{pods.stdout}\n--- operator log ---\n{operator_log(self.cp)}"
            ) from None

    # -- pods ------------------------------------------------------------------------------

    def pods(self, name: str) -> list[dict[str, Any]]:
        """The job's trainer pods (wire form), oldest first."""
        response: Any = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{JOB_LABEL}={name}", _preload_content=False
        )
        items = json.loads(response.data)["items"]
        return sorted(items, key=lambda p: p["metadata"]["creationTimestamp"])

    def pod_log(self, pod: dict[str, Any]) -> str:
        """The trainer container's log, as ``kubectl logs`` reads it (from the kubelet)."""
        log: str = self.core.read_namespaced_pod_log(
            pod["metadata"]["name"], self.namespace, container=CONTAINER_NAME
        )
        return log

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
    kubetune_release: str,
    quickstart_data: str,
    request: pytest.FixtureRequest,
) -> Iterator[E2E]:
    name = make_namespace(control_plane, NAMESPACE_PREFIX, request, s3_secret(s3), _hf_secret())
    started = time.monotonic()
    try:
        yield E2E(control_plane, kube, name, s3)
        texts = namespace_texts(kube, name) | manifest_texts(s3, BUCKET, f"e2e/{name}/")
        leaked = hits(texts, _given(s3))
        assert not leaked, f"secrets found in what the test's jobs wrote: {leaked}"
    finally:
        print(f"{request.node.name}: {time.monotonic() - started:.1f}s")
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
