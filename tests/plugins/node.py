"""pytest plugin: a real kubelet node joined to the session's control plane.

Fixtures:

``real_node`` (package)
    a started :class:`devenv.node.RealNode` (containerd, kubelet, kube-proxy, CoreDNS)
    with the project's images built if stale and imported into its containerd. Defined
    in a plugin, its package is the root one: the node starts with the first test that
    uses it and is shared until the session ends. The image store admits one node at a
    time, so the packages that start a node or an installation of their own
    (``tests/chaos``, ``tests/day_two``, ``tests/dev``) come before ``tests/e2e`` in path
    order; run them before, never after, the node's users in one session.

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
