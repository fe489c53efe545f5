"""The pod runner's translation of a Pod into a process: env, volumes, paths, command."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from devenv.podrunner import plan
from devenv.podrunner.plan import ConfigError, Mount


class FakeLookup:
    """Secrets and ConfigMaps held in dicts: (namespace, name) -> data."""

    def __init__(
        self,
        secrets: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None,
        config_maps: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None,
    ) -> None:
        self.secrets = dict(secrets or {})
        self.config_maps = dict(config_maps or {})
        self.tokens: list[tuple[str | None, int]] = []

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.secrets.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        return self.config_maps.get((namespace, name))

    def service_account_token(
        self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int
    ) -> str:
        self.tokens.append((audience, expiration_seconds))
        return f"token-for-{pod['metadata']['name']}"


def _pod(container: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "train-abc",
            "namespace": "ml",
            "uid": "u-1",
            "labels": {"app": "kubetune"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
        },
        "spec": {
            "nodeName": "local-0",
            "containers": [{"name": "trainer", **container}],
            "volumes": volumes or [],
        },
    }


def _env(container: dict[str, Any], lookup: FakeLookup | None = None) -> dict[str, str]:
    return plan.resolve_env(
        _pod(container), container, lookup or FakeLookup(), pod_ip="127.0.0.7", host_ip="127.0.0.1"
    )


def test_env_from_sources_in_order_then_env_wins_with_prefix() -> None:
    lookup = FakeLookup(
        secrets={("ml", "s3"): {"AWS_ACCESS_KEY_ID": b"id", "SHARED": b"from-secret"}},
        config_maps={("ml", "cm"): {"SHARED": b"from-cm", "LEVEL": b"info"}},
    )
    env = _env(
        {
            "envFrom": [
                {"secretRef": {"name": "s3"}},
                {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                {"configMapRef": {"name": "cm"}},
            ],
            "env": [{"name": "LEVEL", "value": "debug"}],
        },
        lookup,
    )
    assert env == {
        "AWS_ACCESS_KEY_ID": "id",
        "SHARED": "from-cm",  # the later source wins
        "CM_SHARED": "from-cm",
        "CM_LEVEL": "info",
        "LEVEL": "debug",  # env beats envFrom
    }


def test_value_from_key_refs_and_downward_api() -> None:
    lookup = FakeLookup(
        secrets={("ml", "tok"): {"t": b"s3cret"}}, config_maps={("ml", "c"): {"k": b"v"}}
    )
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    env = _env(
        {
            "env": [
                {"name": "T", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "t"}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                {"name": "RANK", "valueFrom": {"fieldRef": {"fieldPath": index}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['x']"}}},
            ]
        },
        lookup,
    )
    assert env == {
        "T": "s3cret",
        "C": "v",
        "RANK": "2",
        "IP": "127.0.0.7",
        "NODE": "local-0",
        "APP": "kubetune",
        "NONE": "",
    }


def test_missing_references_fail_like_the_kubelet_unless_optional() -> None:
    with pytest.raises(ConfigError, match='secret "nope" not found') as err:
        _env({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]})
    assert err.value.reason == "CreateContainerConfigError"
    lookup = FakeLookup(config_maps={("ml", "c"): {}})
    with pytest.raises(ConfigError, match="couldn't find key k in Configmap ml/c"):
        _env(
            {"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
            lookup,
        )
    optional = {"name": "nope", "key": "k", "optional": True}
    env = _env(
        {
            "envFrom": [{"secretRef": {"name": "gone", "optional": True}}],
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": optional}}],
        }
    )
    assert env == {}


def test_dollar_references_expand_against_earlier_variables_only() -> None:
    env = _env(
        {
            "env": [
                {"name": "A", "value": "a"},
                {"name": "B", "value": "$(A)-$(C)-$$(A)"},
                {"name": "C", "value": "c"},
            ]
        }
    )
    assert env["B"] == "a-$(C)-$(A)"


def test_unsupported_field_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported fieldRef"):
        _env({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]})


def test_rewrite_path_matches_whole_components_and_the_deepest_mount() -> None:
    mounts = [Mount("/work", Path("/pods/p/work")), Mount("/work/cache", Path("/pods/p/cache"))]
    assert plan.rewrite_path("/work", mounts) == "/pods/p/work"
    assert plan.rewrite_path("/work/out/a.txt", mounts) == "/pods/p/work/out/a.txt"
    assert plan.rewrite_path("/work/cache/hf", mounts) == "/pods/p/cache/hf"
    assert plan.rewrite_path("/workspace", mounts) == "/workspace"
    assert plan.rewrite_path("s3://bucket/work", mounts) == "s3://bucket/work"


def test_volumes_become_directories_with_their_files(tmp_path: Path) -> None:
    lookup = FakeLookup(
        secrets={("ml", "s"): {"key": b"k", "other": b"o"}},
        config_maps={("ml", "cfg"): {"config.json": b"{}", "unused": b"x"}},
    )
    volumes = [
        {
            "name": "cfg",
            "configMap": {
                "name": "cfg",
                "items": [{"key": "config.json", "path": "c/config.json"}],
            },
        },
        {"name": "sec", "secret": {"secretName": "s"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]
            },
        },
        {"name": "scratch", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
        {"name": "host", "hostPath": {"path": "/srv/data"}},
        {
            "name": "token",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}},
                    {
                        "configMap": {
                            "name": "cfg",
                            "items": [{"key": "config.json", "path": "ca.crt"}],
                        }
                    },
                ]
            },
        },
    ]
    plans = plan.plan_volumes(
        _pod({}, volumes),
        lookup,
        tmp_path,
        pod_ip="127.0.0.7",
        host_ip="127.0.0.1",
        memory_root=Path("/dev/shm/p"),
    )
    assert plans["cfg"].files == {"c/config.json": b"{}"}
    assert plans["sec"].files == {"key": b"k", "other": b"o"}
    assert plans["info"].files == {"ns": b"ml"}
    assert plans["scratch"].host_dir == tmp_path / "volumes" / "scratch"
    assert plans["shm"].host_dir == Path("/dev/shm/p/shm")
    assert (plans["host"].host_dir, plans["host"].create) == (Path("/srv/data"), False)
    assert plans["token"].files == {"token": b"token-for-train-abc", "ca.crt": b"{}"}
    assert lookup.tokens == [(None, 600)]


def test_unsupported_volume_keeps_the_pod_pending(tmp_path: Path) -> None:
    pvc = [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]
    with pytest.raises(ConfigError, match="persistentVolumeClaim") as err:
        plan.plan_volumes(_pod({}, pvc), FakeLookup(), tmp_path, pod_ip="x", host_ip="y")
    assert err.value.reason == "ContainerCreating"


def test_command_maps_interpreters_and_expands_references() -> None:
    env = {"CFG": "/pods/p/config.json", "PATH": "/usr/bin:/bin"}
    assert plan.command_argv(["python", "-m", "m"], ["--config", "$(CFG)"], env, "/venv/py") == [
        "/venv/py",
        "-m",
        "m",
        "--config",
        "/pods/p/config.json",
    ]
    assert plan.command_argv(["/usr/bin/python3.11"], [], env, "/venv/py") == ["/venv/py"]
    assert plan.command_argv(["torchrun", "--standalone", "--module", "m"], [], env, "/p") == [
        "/p",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--module",
        "m",
    ]
    assert plan.command_argv(["sh", "-c", "true"], [], env, "/p")[0].endswith("/sh")
    with pytest.raises(ConfigError, match="not found in"):
        plan.command_argv(["no-such-program"], [], env, "/p")
    with pytest.raises(ConfigError, match="no command"):
        plan.command_argv([], ["--flag"], env, "/p")


def test_build_launch_maps_the_trainer_pod(tmp_path: Path) -> None:
    """The shape the operator renders: config in a ConfigMap, emptyDirs, fixed paths."""
    container = {
        "command": ["python", "-m", "kubetune_trainer"],
        "env": [
            {"name": "KUBETUNE_CONFIG", "value": "/etc/kubetune/config.json"},
            {"name": "KUBETUNE_TERMINATION_PATH", "value": "/dev/termination-log"},
            {"name": "KUBETUNE_WORK_DIR", "value": "/work"},
            {"name": "HOME", "value": "/work"},
            {"name": "HF_HOME", "value": "/cache/huggingface"},
            {"name": "KUBETUNE_METRICS_PORT", "value": "9090"},
        ],
        "envFrom": [{"secretRef": {"name": "s3"}}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/kubetune", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "cache", "mountPath": "/cache"},
            {"name": "work", "mountPath": "/work"},
        ],
        "terminationMessagePath": "/dev/termination-log",
    }
    volumes = [
        {"name": "config", "configMap": {"name": "job-config"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "work", "emptyDir": {}},
    ]
    lookup = FakeLookup(
        secrets={("ml", "s3"): {"AWS_ACCESS_KEY_ID": b"id"}},
        config_maps={("ml", "job-config"): {"config.json": b'{"a": 1}'}},
    )
    launch = plan.build_launch(
        _pod(container, volumes),
        lookup,
        tmp_path,
        pod_ip="127.0.0.9",
        host_ip="127.0.0.1",
        base_env={"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "leak"},
    )
    volumes_dir = tmp_path / "volumes"
    assert launch.argv == [sys.executable, "-m", "kubetune_trainer"]
    env = launch.env
    assert env["KUBETUNE_CONFIG"] == str(volumes_dir / "config" / "config.json")
    assert env["KUBETUNE_TERMINATION_PATH"] == str(launch.termination_path)
    assert env["KUBETUNE_WORK_DIR"] == env["HOME"] == str(volumes_dir / "work")
    assert env["HF_HOME"] == str(volumes_dir / "cache" / "huggingface")
    assert env["TMPDIR"] == str(volumes_dir / "tmp")
    assert env["AWS_ACCESS_KEY_ID"] == "id" and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["KUBETUNE_PODRUNNER_POD_IP"] == "127.0.0.9"
    assert env["PYTHONPATH"].split(":")[0] == str(plan.SITE_DIR)
    assert env["PATH"].startswith(str(Path(sys.executable).parent))
    assert env["HOSTNAME"] == "train-abc"
    assert launch.volumes["config"].files == {"config.json": b'{"a": 1}'}
    assert launch.cwd == tmp_path / "home"


def test_refuses_pods_it_cannot_run_faithfully() -> None:
    with pytest.raises(ConfigError, match="exactly one container"):
        plan.main_container({"spec": {"containers": [{}, {}]}})
    with pytest.raises(ConfigError, match="init containers"):
        plan.main_container({"spec": {"initContainers": [{}], "containers": [{}]}})


def test_the_runners_python_path_reaches_the_pod_after_the_bind_hook(tmp_path: Path) -> None:
    pod = _pod({"command": ["python", "-c", "pass"]})
    launch = plan.build_launch(
        pod,
        FakeLookup(),
        tmp_path,
        pod_ip="127.0.0.9",
        host_ip="127.0.0.1",
        base_env={"PATH": "/usr/bin", "PYTHONPATH": "/src/a:/src/b"},
    )
    assert launch.env["PYTHONPATH"] == f"{plan.SITE_DIR}:/src/a:/src/b"
