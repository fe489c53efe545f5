"""Third-party CRDs and the Kueue binary for the cluster tests, from the Go module proxy.

Why from Go modules: the only registries reachable are package registries; the
Prometheus Operator and Kueue are Go modules whose source ships their CRD manifests, so
``go mod download`` of a pinned version yields exactly the CRDs a user installs, and
Kueue's manager builds with ``go install`` (no replace lines). Results are cached under
``~/.cache/kubetune`` like the control-plane binaries.

    .venv/bin/python -m tests.cluster.external   # prefetch and build (about 7 minutes cold)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from devenv import build

PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
KUEUE = ("sigs.k8s.io/kueue", "v0.17.0")


def _go(*args: str, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the go command with the control plane's build settings (static, -mod=mod)."""
    return subprocess.run(
        ["go", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false", **env},
    )


def module_dir(module: str, version: str) -> Path:
    """Download ``module@version`` into the Go module cache; return its source dir."""
    proc = _go("mod", "download", "-json", f"{module}@{version}", timeout=600)
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "Error" in info:
        raise RuntimeError(
            f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr}"
        )
    return Path(info["Dir"])


def _load(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for p in paths for doc in yaml.safe_load_all(p.read_text()) if doc]


def monitoring_crds() -> list[dict[str, Any]]:
    """The ServiceMonitor, PodMonitor and PrometheusRule CRDs of the pinned Prometheus
    Operator (what the chart's optional monitoring resources need)."""
    crds = module_dir(*PROMETHEUS_OPERATOR) / "example" / "prometheus-operator-crd"
    return _load(
        [
            crds / "monitoring.coreos.com_servicemonitors.yaml",
            crds / "monitoring.coreos.com_podmonitors.yaml",
            crds / "monitoring.coreos.com_prometheusrules.yaml",
        ]
    )


def kueue_source() -> Path:
    """Kueue's module source (CRDs under config/components/crd/bases)."""
    return module_dir(*KUEUE)


def kueue_crds() -> list[dict[str, Any]]:
    """Every CRD of the pinned Kueue release."""
    bases = kueue_source() / "config" / "components" / "crd" / "bases"
    return _load(sorted(bases.glob("*.yaml")))


def kueue_binary() -> Path:
    """The Kueue manager binary, built once (about 7 minutes on 2 cores) and cached.

    ``go install`` of the pinned version into ``<cache>/bin/kueue-<version>/``; a
    ``.built`` stamp marks a finished build (an interrupted one is rebuilt).
    """
    out = build.cache_root() / "bin" / f"kueue-{KUEUE[1]}"
    binary = out / "kueue"
    if (out / ".built").is_file() and binary.is_file():
        return binary
    out.mkdir(parents=True, exist_ok=True)
    proc = _go(
        "install",
        "-ldflags",
        "-s -w",
        f"{KUEUE[0]}/cmd/kueue@{KUEUE[1]}",
        timeout=1800,
        GOBIN=str(out),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building kueue {KUEUE[1]} failed:\n{proc.stderr[-4000:]}")
    (out / ".built").write_text(KUEUE[1] + "\n")
    return binary


#: Kueue reads its metrics serving certificate from this fixed path when its internal
#: certificate management is off (cmd/kueue/main.go); it exits if the files are missing.
KUEUE_METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")


def kueue_config(workdir: Path, *, webhook_port: int, health_port: int) -> Path:
    """A Kueue Configuration for a manager running as a local process on loopback.

    Leader election and internal certificate management are off (one process, our own
    certificates), only ``batch/job`` is integrated, and jobs without the queue-name
    label are left alone (the operator's jobs opt in with the label).
    """
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {
            "port": webhook_port,
            "host": "127.0.0.1",
            "certDir": str(workdir / "webhook-certs"),
        },
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
    }
    path = workdir / "kueue-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: Label that opts a namespace into the Job webhooks registered by :func:`kueue_webhooks`,
#: so that Kueue's fail-closed Job webhooks never touch other tests' namespaces.
KUEUE_TEST_NAMESPACE_LABEL = {"kubetune.io/kueue-test": "true"}


def kueue_webhooks(port: int, ca_pem: bytes) -> list[dict[str, Any]]:
    """Kueue's webhook configurations for batch Jobs and Kueue's own kinds, pointed at
    the manager on ``https://127.0.0.1:<port>`` (the API server calls loopback URLs
    directly; no Service is needed) and trusting ``ca_pem``.

    The other integrations' webhooks (pods, deployments, ...) are left out: they are
    not enabled in :func:`kueue_config`, and a fail-closed webhook for Pods would refuse
    every pod in the cluster. Job webhooks only apply to namespaces carrying
    :data:`KUEUE_TEST_NAMESPACE_LABEL`.
    """
    import base64

    manifests = kueue_source() / "config" / "components" / "webhook" / "manifests.yaml"
    ca = base64.b64encode(ca_pem).decode()
    configs = []
    for doc in _load([manifests]):
        kept = []
        for hook in doc["webhooks"]:
            groups = {g for rule in hook["rules"] for g in rule["apiGroups"]}
            if not groups & {"batch", "kueue.x-k8s.io"}:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca}
            if "batch" in groups:
                hook["namespaceSelector"] = {"matchLabels": dict(KUEUE_TEST_NAMESPACE_LABEL)}
            kept.append(hook)
        doc["metadata"] = {"name": f"kubetune-test-kueue-{doc['metadata']['name']}"}
        doc["webhooks"] = kept
        configs.append(doc)
    return configs


def main() -> int:
    """Fetch and build everything above ahead of a test run (CI's install step)."""
    print(f"monitoring CRDs: {len(monitoring_crds())} from {PROMETHEUS_OPERATOR[0]}")
    print(f"kueue CRDs: {len(kueue_crds())} from {KUEUE[0]}@{KUEUE[1]}")
    print(f"kueue: {kueue_binary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
