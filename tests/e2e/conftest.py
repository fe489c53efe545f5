"""Fixtures of the end-to-end tests: a local-exec node and the pod runner that runs it.

``local_node`` (session)
    the node ``local-0`` (label ``kubetune.io/local-exec=true``, no GPUs, no taint)
    added to the session's control plane; pods land there with the node selector
    :data:`LOCAL_NODE_SELECTOR` (the session's ``cpu-0`` is a KWOK node whose pods
    "succeed" without running anything).
``pod_runner`` (session)
    a started :class:`kubetune.devenv.podrunner.PodRunner` for ``local-0`` only (other
    tests add local-exec nodes whose pods must be left alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubetune.devenv.cluster import ControlPlane, FakeNode
from kubetune.devenv.podrunner import PodRunner

LOCAL_NODE = FakeNode("local-0", cpu="16", memory="64Gi", local_exec=True)
LOCAL_NODE_SELECTOR = {"kubernetes.io/hostname": LOCAL_NODE.name}


@pytest.fixture(scope="session")
def local_node(control_plane: ControlPlane) -> str:
    if LOCAL_NODE not in control_plane.nodes:
        control_plane.add_node(LOCAL_NODE)
    return LOCAL_NODE.name


@pytest.fixture(scope="session")
def pod_runner(
    control_plane: ControlPlane, local_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PodRunner]:
    workdir: Path = tmp_path_factory.mktemp("podrunner")
    with PodRunner(control_plane.kubeconfig, workdir, nodes=[local_node]) as runner:
        yield runner
