"""pytest plugin: a real kubelet node joined to the session's control plane.

Fixtures:

``real_node`` (package)
    a started :class:`devenv.node.RealNode` (containerd, kubelet, kube-proxy, CoreDNS)
    with the project's images built if stale and imported into its containerd. Package
    scope: the node runs while the tests of one package run (``tests/e2e``) and is gone
    before the next starts, so a package that starts a whole installation of its own
    (``tests/dev``) never meets it; the image store admits one node at a time.

Every test that uses ``real_node`` is marked ``node`` automatically, so ``-m "not node"``
deselects the tests that need root, the images and a real container runtime.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.cluster import ControlPlane
from devenv.node import RealNode


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "real_node" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="package")
def real_node(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    node = RealNode(control_plane, tmp_path_factory.mktemp("node"))
    node.start()
    try:
        yield node
    finally:
        node.stop()
