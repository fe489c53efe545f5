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
* fake-gcs-server (GCS emulator): v1.56.1, the newest the proxy serves; ``go 1.26``.
* Azurite (Azure Blob emulator, npm): 3.35.0, the newest whose ``engines`` accepts the
  machine's Node.js 20 (3.36 wants Node >= 21, 3.37 Node >= 22).
* MLflow tracking server: 3.17.2, the version of the ``mlflow-skinny`` client in the
  trainer image (3.18.0's ``mlflow`` asks for an ``mlflow-skinny`` 3.18.0 that is not
  published). It gets a virtual environment of its own: the full ``mlflow`` caps
  ``pyarrow`` below the trainer's.
* Argo CD: v3.6.1 is the first release whose in-repo gitops-engine module the proxy
  serves at the same version (v3.5.x's pseudo-version is not served); it declares
  ``go 1.27.0``, newer than the machine's Go, so its build runs under the toolchain the
  go command fetches through the module proxy (``GOTOOLCHAIN``).
"""

from __future__ import annotations

from typing import Final

KUBERNETES_VERSION: Final = "v1.36.3"
ETCD_VERSION: Final = "v3.6.16"
KWOK_VERSION: Final = "v0.8.0"
HELM_VERSION: Final = "v3.22.0"
CONTAINERD_VERSION: Final = "v2.4.2"
COREDNS_VERSION: Final = "v1.15.0"
FAKE_GCS_SERVER_VERSION: Final = "v1.56.1"
AZURITE_VERSION: Final = "3.35.0"
MLFLOW_VERSION: Final = "3.17.2"
ARGOCD_VERSION: Final = "v3.6.1"
#: The Go toolchain Argo CD's build runs under (its go.mod asks for Go >= 1.27).
ARGOCD_GO_TOOLCHAIN: Final = "go1.27.4"


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """Return the version of the published staging modules for a Kubernetes release.

    ``k8s.io/kubernetes`` vX.Y.Z ships its staging modules (client-go, apiserver, ...)
    as v0.Y.Z; the wrapper module replaces the ``v0.0.0`` requirements with these.
    """
    major, minor, patch = kubernetes_version.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}")
    return f"v0.{minor}.{patch}"
