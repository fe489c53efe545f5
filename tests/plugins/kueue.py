"""pytest plugin: Kueue's controller against the session's control plane.

``kueue`` (session)
    Kueue v0.17.0 (built from the Go module proxy, tests/cluster/external.py) running as a
    local process with the admin kubeconfig, its CRDs and the chart's CRDs applied, and
    its webhooks for batch Jobs and Kueue's own kinds registered on loopback.
``kueue_namespace`` (function)
    the test's ``namespace``, opted into Kueue's Job webhooks.
``apply`` (session)
    ``apply(docs)``: server-side apply of a list of manifests (as a JSON List).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devenv.certs import CertificateAuthority
from devenv.cluster import ControlPlane
from devenv.process import Process, free_port, wait_for
from tests.chart import crd_documents
from tests.cluster import external

Apply = Callable[[list[dict[str, Any]]], None]


@pytest.fixture(scope="session")
def apply(control_plane: ControlPlane) -> Apply:
    def run(docs: list[dict[str, Any]]) -> None:
        control_plane.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
        )

    return run


@pytest.fixture(scope="session")
def kueue(
    control_plane: ControlPlane, apply: Apply, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    binary = external.kueue_binary()
    crds = external.kueue_crds() + crd_documents()
    apply(crds)
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
            # under /visibility; the tests read Workload status instead.
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
        apply(webhooks)
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
def kueue_namespace(namespace: str, control_plane: ControlPlane) -> str:
    """The test namespace, opted into Kueue's Job webhooks."""
    labels = [f"{k}={v}" for k, v in external.KUEUE_TEST_NAMESPACE_LABEL.items()]
    control_plane.kubectl("label", "namespace", namespace, *labels)
    return namespace
