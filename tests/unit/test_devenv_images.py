"""The pure parts of the image builds and the real node: build context, cache keys, the
pause image archive, the node's configuration documents."""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import subprocess
import tarfile
from pathlib import Path

from devenv import images, network, node

DOCKERIGNORE = (images.ROOT / ".dockerignore").read_text()


def test_build_context_is_what_dockerignore_lets_through() -> None:
    files = [
        "pyproject.toml",
        "README.md",
        "Makefile",
        "contract/kubetune_contract/api/spec.py",
        "operator/kubetune/render/pod.py",
        "operator/kubetune/__pycache__/x.cpython-311.pyc",
        "trainer-image/Dockerfile",
        "trainer-image/constraints.txt",
        "trainer-image/kubetune_trainer/run.py",
        "trainer-image/kubetune_trainer/sub/deep.pyc",
        "deploy/operator-constraints.txt",
        "deploy/pins.py",
        "tests/unit/test_x.py",
        "devenv/images.py",
    ]
    assert images.context_files(files, DOCKERIGNORE) == [
        "README.md",
        "contract/kubetune_contract/api/spec.py",
        "deploy/operator-constraints.txt",
        "operator/kubetune/render/pod.py",
        "pyproject.toml",
        "trainer-image/constraints.txt",
        "trainer-image/kubetune_trainer/run.py",
    ]
    trainer = images.TRAINER.dockerfile.read_text()
    assert images.image_files(files, DOCKERIGNORE, trainer) == [
        "contract/kubetune_contract/api/spec.py",
        "trainer-image/constraints.txt",
        "trainer-image/kubetune_trainer/run.py",
    ], "the trainer image holds no operator code (and so is not rebuilt for it)"
    operator = images.OPERATOR.dockerfile.read_text()
    assert images.image_files(files, DOCKERIGNORE, operator) == [
        "README.md",
        "contract/kubetune_contract/api/spec.py",
        "deploy/operator-constraints.txt",
        "operator/kubetune/render/pod.py",
        "pyproject.toml",
    ], "the operator image holds no trainer code"


def test_copy_sources_reads_copy_lines_but_not_other_stages() -> None:
    dockerfile = (
        "FROM x AS build\nCOPY a.txt ./dir/ /src/\ncopy --chown=1:1 b /b\n"
        "COPY --from=build /opt /opt\nRUN cp c d\n"
    )
    assert images.copy_sources(dockerfile) == ["a.txt", "dir", "b"]


def test_last_matching_pattern_decides_and_double_star_spans_directories() -> None:
    rules = "*\n!src/\nsrc/**/secret.txt\n!src/keep/secret.txt\n"
    files = ["src/a.py", "src/x/y/secret.txt", "src/secret.txt", "src/keep/secret.txt", "b"]
    assert images.context_files(files, rules) == ["src/a.py", "src/keep/secret.txt"]


def test_image_key_changes_with_the_sources_and_the_base(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*\n!app/\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "Dockerfile").write_text("FROM ${BASE}\nCOPY app/ /app/\n")
    (tmp_path / "notes.txt").write_text("not in the context\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    spec = images.ImageSpec("app", tmp_path / "Dockerfile", "BASE", "example/app:1", tmp_path)
    first = images.image_key(spec, "base-1")
    assert images.image_key(spec, "base-1") == first
    (tmp_path / "notes.txt").write_text("changed, still not in the context\n")
    assert images.image_key(spec, "base-1") == first
    assert images.image_key(spec, "base-2") != first
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    assert images.image_key(spec, "base-1") != first


def test_an_exported_tree_is_keyed_by_its_files_without_git(tmp_path: Path) -> None:
    """An earlier release is exported with ``git archive``: no .git, every file counts."""
    (tmp_path / ".dockerignore").write_text("*\n!app/\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "Dockerfile").write_text("FROM ${BASE}\nCOPY app/ /app/\n")
    spec = images.ImageSpec("app", tmp_path / "Dockerfile", "BASE", "example/app:1", tmp_path)
    first = images.image_key(spec, "base-1")
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    assert images.image_key(spec, "base-1") != first


def _tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_pause_archive_is_a_valid_oci_layout_with_the_binary(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF pause")
    archive = images.pause_archive(binary, "registry.k8s.io/pause:test")
    assert archive == images.pause_archive(binary, "registry.k8s.io/pause:test"), "reproducible"
    members = _tar_members(archive)
    index = json.loads(members["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "registry.k8s.io/pause:test"
    for name, blob in members.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(members[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    config = json.loads(members[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
    assert config["config"]["Entrypoint"] == ["/pause"]
    (layer,) = manifest["layers"]
    assert _tar_members(members[f"blobs/sha256/{layer['digest'].split(':')[1]}"]) == {
        "pause": b"\x7fELF pause"
    }


def test_every_address_of_the_pod_network_is_in_the_benchmarking_range() -> None:
    for value in (
        network.HOST_ADDRESS,
        network.NODE_ADDRESS,
        network.NODE_POD_GATEWAY,
        network.KUBERNETES_SERVICE_IP,
        network.DNS_SERVICE_IP,
    ):
        assert ipaddress.ip_address(value) in network.ALLOWED_RANGE, value
    for cidr in (
        network.POD_CIDR,
        network.NODE_POD_SUBNET,
        network.KWOK_POD_CIDR,
        network.SERVICE_CIDR,
    ):
        assert ipaddress.ip_network(cidr).subnet_of(network.ALLOWED_RANGE), cidr
    assert ipaddress.ip_network(network.NODE_POD_SUBNET).subnet_of(
        ipaddress.ip_network(network.POD_CIDR)
    )
    assert not ipaddress.ip_network(network.POD_CIDR).overlaps(
        ipaddress.ip_network(network.KWOK_POD_CIDR)
    )


def test_pods_get_no_default_route_and_no_masquerading() -> None:
    (bridge, _) = node.cni_config()["plugins"]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == [{"dst": "198.18.0.0/15"}]


def test_kubelet_settings_this_vm_needs(tmp_path: Path) -> None:
    cfg = node.kubelet_config(
        ca=tmp_path / "ca.crt",
        runtime_socket=tmp_path / "c.sock",
        resolv_conf=tmp_path / "resolv.conf",
        logs_dir=tmp_path / "logs",
        plugins_dir=tmp_path / "plugins",
        tainted=True,
    )
    assert cfg["failCgroupV1"] is False
    assert cfg["cgroupDriver"] == "cgroupfs"
    assert cfg["oomScoreAdj"] == 0
    assert cfg["imageGCHighThresholdPercent"] == 100
    assert cfg["clusterDNS"] == [network.DNS_SERVICE_IP]
    assert cfg["registerWithTaints"] == [
        {"key": node.REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
    ]
    untainted = node.kubelet_config(
        ca=tmp_path,
        runtime_socket=tmp_path,
        resolv_conf=tmp_path,
        logs_dir=tmp_path,
        plugins_dir=tmp_path,
        tainted=False,
    )
    assert untainted["registerWithTaints"] == []
