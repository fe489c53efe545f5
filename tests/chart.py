"""Helpers shared by the chart's unit and cluster tests: the helm binary, rendering, the
value sets every test runs over, and installing a release with its operator run locally.

Why a module of its own: the unit tests (``helm template``/``lint``, no cluster) and the
cluster tests (server-side dry run, install) must render the chart with exactly the
same option sets, so that "every option toggled" means the same thing in both.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from devenv import build
from devenv.cluster import ControlPlane
from devenv.process import Process, free_port, poll, wait_for

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "kubetune"

#: Named value sets: the defaults, and every option toggled at once (cluster-wide and
#: namespaced, since those two modes render different RBAC).
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-cluster-wide": {
        "replicaCount": 2,
        "commonLabels": {"team": "ml-platform"},
        "image": {"digest": "sha256:" + "a" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "trainer": {
            "image": {"tag": "9.9.9"},
            "gracePeriodSeconds": 1200,
            "metricsPort": 9191,
            "podAnnotations": {"karpenter.sh/do-not-disrupt": "true"},
        },
        "peering": {"name": "kubetune-peers"},
        "logLevel": "debug",
        "extraArgs": ["--workers=4"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "kubetune"}
                            },
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "kubetune"}},
            }
        ],
        "podAnnotations": {"example.com/owner": "platform"},
        "podLabels": {"example.com/tier": "control"},
        "serviceAccount": {
            "name": "kubetune-operator",
            "annotations": {"example.com/role": "kubetune"},
        },
        "metrics": {"port": 9200, "service": {"annotations": {"example.com/scrape": "yes"}}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "podMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "alertLabels": {"team": "ml-platform"},
            "stalledFor": "2h",
        },
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "ML"}},
        "networkPolicy": {
            "enabled": True,
            "apiServer": {"cidrs": ["10.0.0.10/32"], "ports": [6443]},
            "metricsScrapers": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
            "trainer": {
                "namespaces": ["team-a"],
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                        "ports": [{"port": 443, "protocol": "TCP"}],
                    }
                ],
            },
        },
        "policy": {
            "images": ["registry.example/ml/", "registry.example/trainer@sha256:" + "b" * 64],
            "env": ["HF_HUB_OFFLINE", "NCCL_*"],
            "secrets": {"team-a": ["hf-token", "s3-credentials"], "*": ["shared-hub-token"]},
            "serviceAccounts": {"team-a": ["trainer"]},
            "maxGpus": 16,
            "maxNodes": 2,
            "maxActiveDeadlineSeconds": 86400,
            "storageSchemes": ["hf", "s3", "pvc"],
        },
    },
    "everything-namespaced": {
        "watch": {"namespaces": ["team-a", "team-b"]},
        "policy": {"maxGpus": 0, "maxNodes": 0},
        "networkPolicy": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "dashboard": {"enabled": True},
    },
    "minimal": {
        "peering": {"enabled": False},
        "metrics": {"enabled": False},
        "rbac": {"create": True},
        "policy": {"enabled": False},
    },
}


#: ``helm install`` arguments of a release in the session's cluster, whose CRDs the tests'
#: fixtures apply and every release shares: a release owning them (``crds.enabled``)
#: would make the next release's install fail, since Helm refuses objects another
#: release owns. tests/cluster/test_chart_crds.py installs them with the chart instead.
SHARED_CRDS = ("--set", "crds.enabled=false")


def crd_documents() -> list[dict[str, Any]]:
    """The CRDs the chart installs: ours as generated (crds/, which templates/crds/ wraps;
    tests/unit/test_chart_files.py checks that) and kopf's peering CRDs (the chart's crds/)."""
    files = [*sorted((ROOT / "crds").glob("*.yaml")), *sorted((CHART / "crds").glob("*.yaml"))]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def apply_crds(control_plane: ControlPlane) -> None:
    """Apply :func:`crd_documents` (server-side) and wait until they are established."""
    docs = crd_documents()
    control_plane.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    names = [f"crd/{d['metadata']['name']}" for d in docs]
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


def helm_binary() -> Path:
    """The pinned helm, built from the Go module proxy into the cache when missing."""
    return build.build_component(build.HELM) / "helm"


def helm(
    *args: str, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run helm; raise with its stderr when ``check`` and it fails."""
    proc = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def values_file(values: Mapping[str, Any], directory: Path) -> Path:
    """Write ``values`` as a values file (JSON is YAML) and return its path."""
    path = directory / "values.json"
    path.write_text(json.dumps(values))
    return path


def render(
    values: Mapping[str, Any],
    directory: Path,
    *,
    namespace: str = "kubetune-system",
    release: str = "kubetune",
) -> list[dict[str, Any]]:
    """``helm template`` the chart with ``values``: the documents of templates/, the
    CRDs of templates/crds/ and the policy hook among them (not kopf's peering CRDs of
    the chart's crds/ directory, which ``helm template`` leaves out)."""
    out = helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--values",
        str(values_file(values, directory)),
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The documents of one kind."""
    return [d for d in docs if d["kind"] == kind]


def sa_kubeconfig(control_plane: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ``namespace/account`` with a bound token."""
    token = control_plane.kubectl(
        "create", "token", account, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(control_plane.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": cluster}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "test", "user": account}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def _local_args(deployment: dict[str, Any], liveness_port: int, metrics_port: int) -> list[str]:
    """The Deployment's arguments, with the two listening ports moved to free loopback
    ports (everything that decides behaviour and permissions stays as rendered)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = []
    for arg in container["args"]:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{liveness_port}/healthz"
        elif arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics_port}"
        args.append(arg)
    return args


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return bool(r.status == 200)


def start_operator(
    deployment: dict[str, Any], kubeconfig: Path, workdir: Path, name: str = "operator"
) -> tuple[Process, Path]:
    """The Deployment's command line as a local process authenticated by ``kubeconfig``;
    returns once kopf's /healthz answers."""
    log = workdir / f"{name}.log"
    liveness, metrics = free_port(), free_port()
    operator = Process(
        name,
        # The console script the operator image's ENTRYPOINT runs.
        [
            str(Path(sys.executable).parent / "kubetune"),
            *_local_args(deployment, liveness, metrics),
        ],
        log,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(workdir),
            "KUBECONFIG": str(kubeconfig),
            # A worktree's code first, as for every other subprocess of the tests.
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
        },
    )
    try:
        wait_for(operator, lambda: _healthy(liveness), what="kopf's /healthz answers", timeout=60)
    except BaseException:
        operator.stop()
        raise
    return operator, log


@contextlib.contextmanager
def install_release(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, *set_args: str
) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """``helm install`` on the chart's CRDs, applied first and shared
    (:data:`SHARED_CRDS`); yields (release, Deployment, SA kubeconfig). Uninstalls
    afterwards, and deletes the FineTuneJobPolicy, a hook that ``helm uninstall`` leaves."""
    name = f"kt{secrets.token_hex(3)}"
    env = control_plane.env()
    apply_crds(control_plane)
    helm(
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        *SHARED_CRDS,
        *set_args,
        env=env,
        timeout=180,
    )
    policy = None
    try:
        manifest = helm("get", "manifest", name, "-n", namespace, env=env).stdout
        deployment = next(
            d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment"
        )
        policy = deployment["metadata"]["name"]  # the chart names its policy like the operator
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        kubeconfig = sa_kubeconfig(control_plane, namespace, account, tmp_path / "sa.kubeconfig")
        yield name, deployment, kubeconfig
    finally:
        helm("uninstall", name, "--namespace", namespace, env=env, timeout=180)
        if policy is not None:
            delete_policy(control_plane, policy)


def delete_policy(control_plane: ControlPlane, policy: str) -> None:
    """After ``helm uninstall``: delete the release's FineTuneJobPolicy (a hook, which
    uninstall leaves) and wait until its admission binding is gone from the API server."""
    control_plane.kubectl("delete", "finetunejobpolicy", policy, "--ignore-not-found")
    wait_until_admission_forgets(control_plane, policy)


def wait_until_admission_forgets(control_plane: ControlPlane, policy: str) -> None:
    """The API server drops a deleted admission binding from its cache a moment after its
    parameter (the FineTuneJobPolicy) is gone: in between, every FineTuneJob write is
    denied. Wait that out, so that the next test's FineTuneJobs meet no trace of this
    release."""
    from tests.cases.manifests import valid_manifest

    probe = valid_manifest("admission-probe")
    probe["metadata"]["namespace"] = "default"

    def forgotten() -> bool:
        proc = control_plane.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(probe), check=False
        )
        return f"'{policy}'" not in proc.stderr

    poll(forgotten, what=f"the API server drops admission policy {policy}", timeout=30)
