"""Every pinned version of the test/dev control plane, in one place.

Why one file: the binaries are cached by ``<component>-<version>``, so bumping a
version here is the only thing needed to get a fresh build, and reviewers see every
upgrade of the test infrastructure as a one-line diff.

Constraints behind the choices:

* Kubernetes: a recent release whose ``go.mod`` asks for a Go the machine has
  (v1.36.x declares ``go 1.26.0``). Its staging modules (``k8s.io/api`` ...) are
  published as ``v0.<minor>.<patch>``, which the wrapper module's replace lines use.
* etcd: the 3.6 line supported by Kubernetes 1.36.
* kwok: v0.8.0 is built against Kubernetes 1.36 client libraries.
* helm: v3 (the chart targets Helm 3; v4 changed the CLI).
* containerd: the 2.x line (kubelet 1.36 dropped support for containerd 1.x, which is
  what Debian ships); v2.4 declares ``go 1.26.6``.
* CoreDNS: cluster DNS for the real node; v1.15 declares ``go 1.26.0``.
"""

from __future__ import annotations

from typing import Final

KUBERNETES_VERSION: Final = "v1.36.3"
ETCD_VERSION: Final = "v3.6.16"
KWOK_VERSION: Final = "v0.8.0"
HELM_VERSION: Final = "v3.22.0"
CONTAINERD_VERSION: Final = "v2.4.2"
COREDNS_VERSION: Final = "v1.15.0"


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """Return the version of the published staging modules for a Kubernetes release.

    ``k8s.io/kubernetes`` vX.Y.Z ships its staging modules (client-go, apiserver, ...)
    as v0.Y.Z; the wrapper module replaces the ``v0.0.0`` requirements with these.
    """
    major, minor, patch = kubernetes_version.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}")
    return f"v0.{minor}.{patch}"
