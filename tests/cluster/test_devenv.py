"""The dev environment's own promises: coexisting clusters, teardown, failure reports."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import pytest

from devenv import build, versions
from devenv.cluster import ControlPlane, FakeNode
from devenv.process import ComponentError, Process

KUBERNETES_GOMOD_EXCERPT = """\
module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kubectl => ./staging/src/k8s.io/kubectl
\tk8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20250101
)
"""


def test_wrapper_module_replaces_every_staging_module() -> None:
    gomod = build.kubernetes_wrapper_gomod(KUBERNETES_GOMOD_EXCERPT, "v1.36.3")
    assert "require k8s.io/kubernetes v1.36.3" in gomod
    replaces = [line for line in gomod.splitlines() if line.startswith("replace ")]
    assert replaces == [
        "replace k8s.io/api => k8s.io/api v0.36.3",
        "replace k8s.io/client-go => k8s.io/client-go v0.36.3",
        "replace k8s.io/kubectl => k8s.io/kubectl v0.36.3",
    ]


ARGOCD_GOMOD_EXCERPT = """\
module github.com/argoproj/argo-cd/v3

go 1.27.0

replace (
\tgithub.com/golang/protobuf => github.com/golang/protobuf v1.5.4

\t// Avoid CVE-2022-3064
\tgopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0
\tk8s.io/api => k8s.io/api v0.37.0
)

replace github.com/argoproj/argo-cd/gitops-engine/v3 => ./gitops-engine
"""


def test_argocd_wrapper_copies_the_replace_lines_but_the_in_repo_ones() -> None:
    gomod = build.argocd_wrapper_gomod(ARGOCD_GOMOD_EXCERPT, "v3.6.1")
    assert "require github.com/argoproj/argo-cd/v3 v3.6.1" in gomod
    assert "go 1.27.0" in gomod
    body = gomod.split("replace (\n", 1)[1].split("\n)", 1)[0]
    assert [line.strip() for line in body.splitlines()] == [
        "github.com/golang/protobuf => github.com/golang/protobuf v1.5.4",
        "gopkg.in/yaml.v2 => gopkg.in/yaml.v2 v2.4.0",
        "k8s.io/api => k8s.io/api v0.37.0",
    ]
    assert "./gitops-engine" not in gomod


def test_staging_version_follows_the_release() -> None:
    assert versions.staging_version("v1.36.3") == "v0.36.3"
    with pytest.raises(ValueError):
        versions.staging_version("v2.0.0")


@pytest.mark.cluster  # builds the binaries when the cache is cold
def test_warm_build_only_checks_the_cache() -> None:
    build.ensure_built()  # the control_plane fixture may not have run yet
    said: list[str] = []
    build.ensure_built(log=said.append)
    assert said and all("cached in" in line for line in said), said
    for component in build.COMPONENTS:
        assert component.bin_dir.parent == build.cache_root() / "bin"
        assert component.bin_dir.name == f"{component.name}-{component.version}"


@pytest.mark.cluster
def test_a_second_cluster_coexists_and_is_torn_down(control_plane: ControlPlane) -> None:
    nodes = [FakeNode("gpu-0", gpus=4, gpu_product="NVIDIA-L4")]
    with ControlPlane(nodes=nodes, binaries=control_plane.bins, log=lambda _: None) as second:
        assert second.port != control_plane.port
        names = second.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert names == ["node/gpu-0"]
        first = control_plane.kubectl("get", "nodes", "-o", "name").stdout.split()
        assert "node/gpu-0" not in first
        pids = [p.pid for p in second.procs]
        workdir = second.workdir
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not workdir.exists()
    control_plane.check_alive()


@pytest.mark.cluster
def test_a_component_that_fails_to_start_reports_its_log(tmp_path: Path) -> None:
    fake_etcd = tmp_path / "etcd"
    fake_etcd.write_text(
        "#!/bin/sh\necho 'etcdmain: listen tcp: address already in use' >&2\nexit 1\n"
    )
    fake_etcd.chmod(0o755)
    bins = dataclasses.replace(build.ensure_built(), etcd=fake_etcd)
    cp = ControlPlane(tmp_path / "cp", binaries=bins, log=lambda _: None)
    with pytest.raises(ComponentError) as err:
        cp.start(timeout=20)
    message = str(err.value)
    assert "etcd exited" in message
    assert "exited with code 1" in message
    assert "address already in use" in message
    assert not cp.procs  # nothing left running


def test_a_child_started_from_a_thread_outlives_the_thread(tmp_path: Path) -> None:
    """The parent-death signal follows the forking thread: a component restarted from a
    worker thread must not get SIGTERM when that thread ends (the chaos run's restarted
    API server did)."""
    started: list[Process] = []
    worker = threading.Thread(
        target=lambda: started.append(Process("sleeper", ["sleep", "30"], tmp_path / "log"))
    )
    worker.start()
    worker.join()
    (proc,) = started
    try:
        time.sleep(0.5)  # the signal, if sent, arrives at once
        assert proc.alive(), f"the child exited with {proc.popen.poll()} after its thread ended"
    finally:
        proc.stop()
