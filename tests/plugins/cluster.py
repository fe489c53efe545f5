"""pytest plugin: a real Kubernetes control plane with KWOK GPU nodes.

Fixtures:

``control_plane`` (session)
    builds the pinned binaries if the cache lacks them (a failed build fails the tests
    with the build's error, never a skip) and starts a
    :class:`devenv.cluster.ControlPlane`; torn down at session end.
``kube`` (session)
    a ``kubernetes.client.ApiClient`` for the admin kubeconfig.
``kubectl`` (session)
    ``kubectl(*args, check=True, input=None)`` running the built kubectl.
``namespace`` (function)
    a fresh namespace (its ``default`` service account exists), deleted afterwards.

Every test that uses ``control_plane`` (directly or through the fixtures above) is
marked ``cluster`` automatically, so ``-m "not cluster"`` deselects it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devenv import build
from devenv.cluster import ControlPlane
from devenv.process import poll

_CLUSTER_FIXTURES = {"control_plane", "kube", "kubectl", "namespace"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _CLUSTER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    bins = build.ensure_built()  # raises BuildError with the log tail on failure
    cp = ControlPlane(binaries=bins)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Callable[..., Any]:
    return control_plane.kubectl


def _namespace_name(test_name: str, prefix: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}{base}-{secrets.token_hex(3)}"


def make_namespace(
    cp: ControlPlane, prefix: str, request: pytest.FixtureRequest, *objects: dict[str, Any]
) -> str:
    """Create a namespace named after the test (``<prefix><test>-<random>``) holding
    ``objects`` (Secrets...), once its ``default`` service account exists (pods are
    refused before); the caller deletes it."""
    name = _namespace_name(request.node.name, prefix)
    cp.request(
        "POST",
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubetune.io/test": "true"}},
        },
    )
    poll(
        lambda: cp.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default"),
        what=f"serviceaccount {name}/default exists",
        timeout=30,
    )
    for obj in objects:
        plural = f"{obj['kind'].lower()}s"
        cp.request("POST", f"/api/v1/namespaces/{name}/{plural}", obj)
    return name


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = make_namespace(control_plane, "t-", request)
    try:
        yield name
    finally:
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")
