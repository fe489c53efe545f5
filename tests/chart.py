"""Helpers shared by the chart's unit and cluster tests: the helm binary, rendering, and
the value sets every test runs over.

Why a module of its own: the unit tests (``helm template``/``lint``, no cluster) and the
cluster tests (server-side dry run, install) must render the chart with exactly the
same option sets, so that "every option toggled" means the same thing in both.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from devenv import build

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
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "ML"}},
    },
    "everything-namespaced": {
        "watch": {"namespaces": ["team-a", "team-b"]},
        "serviceMonitor": {"enabled": True},
        "podMonitor": {"enabled": True},
        "dashboard": {"enabled": True},
    },
    "minimal": {
        "peering": {"enabled": False},
        "metrics": {"enabled": False},
        "rbac": {"create": True},
    },
}


def crd_documents() -> list[dict[str, Any]]:
    """The CRDs the chart installs (its crds/ directory)."""
    return [
        d
        for f in sorted((CHART / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d
    ]


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
    """``helm template`` the chart with ``values``; the documents, CRDs excluded."""
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
