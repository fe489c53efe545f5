"""Fixtures of the upgrade test: a cluster of its own where the previous release
(:mod:`devenv.release`) is installed, runs jobs, and is upgraded to this chart.

Why a cluster of its own: the previous chart installs its CRDs from ``crds/``, which
Helm never upgrades and no release owns, so the upgrade has to start from a cluster
where no other release put newer CRDs. Its API server audit-logs Job creates, so the
"no Job created twice" check counts from the server's own record
(:data:`tests.chaos.chaos.AUDIT_POLICY`).

``upgrade_plane`` (package)
    that control plane (KWOK GPU nodes beside the real node).
``upgrade_node`` (package)
    a real node joined to it, with the previous release's operator image in its store
    (built from the release's own tree on first use, then cached). The image store
    admits one node at a time, so this package comes before ``tests/e2e`` in path order
    (see tests/plugins/node.py).
``upgrade_kube`` (package)
    a Kubernetes API client for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from kubernetes import config

from devenv import build, images, release
from devenv.cluster import ControlPlane
from devenv.node import RealNode
from tests.chaos.chaos import AUDIT_POLICY


@pytest.fixture(scope="package")
def upgrade_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    workdir = tmp_path_factory.mktemp("upgrade-plane")
    with ControlPlane(workdir, binaries=build.ensure_built(), audit_policy=AUDIT_POLICY) as cp:
        yield cp


@pytest.fixture(scope="package")
def upgrade_node(
    upgrade_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealNode]:
    with RealNode(upgrade_plane, tmp_path_factory.mktemp("upgrade-node")) as node:
        images.ensure_images(node.containerd, images=[release.operator_image()], log=node.log)
        yield node


@pytest.fixture(scope="package")
def upgrade_kube(upgrade_plane: ControlPlane) -> Iterator[Any]:
    with closing(config.new_client_from_config(config_file=str(upgrade_plane.kubeconfig))) as api:
        yield api
