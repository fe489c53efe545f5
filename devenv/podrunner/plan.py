"""Pure part of the pod runner: from a Pod object to the local process that stands in for it.

A process can't be given mounts, a network namespace or a container image, so the
runner translates what the pod asks for into what a process can have:

* **Volumes** become per-pod directories (:func:`plan_volumes`): ``emptyDir`` an empty
  directory (``medium: Memory`` one under ``/dev/shm`` when that is writable),
  ``configMap`` / ``secret`` / ``downwardAPI`` / ``projected`` a directory with the
  files written (service-account tokens come from the TokenRequest API, bound to the
  pod, as the kubelet gets them), ``hostPath`` the host path itself. Other volumes
  (PVCs...) are refused with a :class:`ConfigError`: the pod stays Pending with the
  reason in its container status, as a kubelet reports a volume it can't set up.
* **Mounts** become a *path mapping* (:func:`rewrite_path`): every environment value,
  command and argument, and the working directory, that names a path at or below a
  ``mountPath`` is rewritten to the volume's directory. A mount at ``/tmp`` also sets
  ``TMPDIR``. This covers programs that take their paths from the environment or the
  command line (the trainer: ``KUBETUNE_CONFIG``, ``KUBETUNE_WORK_DIR``, ``HOME``,
  ``HF_HOME``, ``XDG_CACHE_HOME``...), not paths compiled into a program; ``/dev/shm``
  is the host's.
* The **termination message path** becomes ``<pod dir>/termination-log``, and an
  environment value equal to the container's ``terminationMessagePath`` is rewritten to
  it.
* The **environment** is resolved as the kubelet does (:func:`resolve_env`): ``envFrom``
  sources in order, then ``env`` (which wins), ``$(VAR)`` references expanded against
  the variables defined before, ``valueFrom`` from Secrets, ConfigMaps and the downward
  API (:func:`field_value`). The process gets only that plus a minimal base (``PATH``,
  locale, ``HOSTNAME``): the runner's own environment (a developer's AWS keys, say) does
  not leak into pods.
* The **command** (:func:`command_argv`): ``python``/``python3``/``pythonX.Y`` run the
  runner's own interpreter (the project's environment stands in for the image),
  ``torchrun`` runs ``python -m torch.distributed.run``; other programs are looked up on
  ``PATH``. A container without ``command`` would run its image's entrypoint, which a
  process doesn't have: refused.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ConfigError",
    "LaunchPlan",
    "Lookup",
    "Mount",
    "VolumePlan",
    "build_launch",
    "command_argv",
    "expand",
    "field_value",
    "plan_volumes",
    "resolve_env",
    "rewrite_path",
]

#: Environment variable through which the pod's IP reaches :mod:`.site` (the bind rewrite).
POD_IP_ENV = "KUBETUNE_PODRUNNER_POD_IP"
#: Directory holding the ``sitecustomize`` that makes servers bind the pod IP.
SITE_DIR = Path(__file__).with_name("site")
#: Variables taken from the runner's environment when set (never credentials);
#: ``PYTHONPATH`` because the runner's Python environment stands in for the image.
BASE_ENV_KEYS = (
    "PATH",
    "PYTHONPATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)
TERMINATION_FILE = "termination-log"


class ConfigError(Exception):
    """The pod can't be started as asked; ``reason`` is the kubelet's waiting reason."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason


class Lookup(Protocol):
    """Reads the objects a pod refers to; ``None`` when the object does not exist."""

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The Secret's decoded data."""

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """The ConfigMap's ``data`` (UTF-8 encoded) and decoded ``binaryData``."""

    def service_account_token(
        self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int
    ) -> str:
        """A token for the pod's service account, bound to the pod (TokenRequest API)."""


def secret_data(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """Decoded ``data`` of a Secret in wire form."""
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def config_map_data(obj: Mapping[str, Any]) -> dict[str, bytes]:
    """``data`` and ``binaryData`` of a ConfigMap in wire form, as bytes."""
    found = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    found.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return found


# -- downward API ----------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Mapping[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The downward-API ``fieldRef`` ``path`` of ``pod`` (wire form), as the kubelet gives it.

    ``status.podIP``/``status.hostIP`` come from the runner (the pod's status may not
    hold them yet when the environment is built). A missing label or annotation is
    the empty string, as in Kubernetes.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


# -- environment -----------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``,
    unknown references stay as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(sub, value)


def _key_ref(ref: Mapping[str, Any], kind: str, namespace: str, lookup: Lookup) -> str | None:
    name = ref.get("name", "")
    key = ref["key"]
    data = (
        lookup.secret(namespace, name) if kind == "secret" else lookup.config_map(namespace, name)
    )
    optional = bool(ref.get("optional"))
    label = "secret" if kind == "secret" else "configmap"
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{label} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {label.capitalize()} {namespace}/{name}")
    return data[key].decode(errors="replace")


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: Lookup,
    *,
    pod_ip: str,
    host_ip: str,
) -> dict[str, str]:
    """The container's environment: ``envFrom`` in order, then ``env`` (wins), expanded."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            ref, data = source["secretRef"], lookup.secret(namespace, source["secretRef"]["name"])
            label = "secret"
        else:
            ref = source["configMapRef"]
            data, label = lookup.config_map(namespace, ref["name"]), "configmap"
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{label} "{ref["name"]}" not found')
        for key, raw in data.items():
            env[prefix + key] = raw.decode(errors="replace")
    for var in container.get("env") or []:
        name = var["name"]
        source = var.get("valueFrom")
        if source is None:
            env[name] = expand(var.get("value", ""), env)
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "secret", namespace, lookup)
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "configmap", namespace, lookup)
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


# -- volumes and the path mapping ------------------------------------------------------


@dataclass(frozen=True)
class VolumePlan:
    """Where a volume lives on the host and the files to write into it (path -> bytes)."""

    name: str
    host_dir: Path
    files: Mapping[str, bytes] = field(default_factory=dict)
    create: bool = True
    """Whether the runner creates (and later removes) ``host_dir``; False for hostPath."""


@dataclass(frozen=True)
class Mount:
    """A container path and the host path that stands in for it."""

    container_path: str
    host_path: Path


def _projected_items(
    items: Sequence[Mapping[str, Any]] | None, data: Mapping[str, bytes], what: str
) -> dict[str, bytes]:
    if not items:
        return dict(data)
    files: dict[str, bytes] = {}
    for item in items:
        if item["key"] not in data:
            if item.get("optional"):
                continue
            raise ConfigError(f"configmap/secret {what}: key {item['key']!r} not found")
        files[item["path"]] = data[item["key"]]
    return files


def _source_files(
    source: Mapping[str, Any], pod: Mapping[str, Any], lookup: Lookup, pod_ip: str, host_ip: str
) -> dict[str, bytes]:
    """Files of a configMap / secret / downwardAPI volume (or projected source)."""
    namespace = pod["metadata"]["namespace"]
    if "configMap" in source:
        ref = source["configMap"]
        data = lookup.config_map(namespace, ref.get("name", ""))
        if data is None:
            if ref.get("optional"):
                return {}
            raise ConfigError(f'configmap "{ref.get("name", "")}" not found', "ContainerCreating")
        return _projected_items(ref.get("items"), data, ref.get("name", ""))
    if "secret" in source:
        ref = source["secret"]
        name = ref.get("secretName") or ref.get("name", "")
        data = lookup.secret(namespace, name)
        if data is None:
            if ref.get("optional"):
                return {}
            raise ConfigError(f'secret "{name}" not found', "ContainerCreating")
        return _projected_items(ref.get("items"), data, name)
    if "downwardAPI" in source:
        files: dict[str, bytes] = {}
        for item in source["downwardAPI"].get("items") or []:
            if "fieldRef" not in item:
                raise ConfigError("downwardAPI volume: only fieldRef items are supported")
            value = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
            files[item["path"]] = value.encode()
        return files
    raise ConfigError(f"unsupported projected source {sorted(source)}")


def plan_volumes(
    pod: Mapping[str, Any],
    lookup: Lookup,
    pod_dir: Path,
    *,
    pod_ip: str,
    host_ip: str,
    memory_root: Path | None = None,
) -> dict[str, VolumePlan]:
    """Each volume of ``pod`` -> its host directory and files (see the module docstring).

    ``memory_root`` is where ``medium: Memory`` emptyDirs go (a tmpfs such as
    ``/dev/shm``); without it they are ordinary directories under ``pod_dir``.
    """
    plans: dict[str, VolumePlan] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume["name"]
        host_dir = pod_dir / "volumes" / name
        if "emptyDir" in volume:
            medium = (volume["emptyDir"] or {}).get("medium", "")
            if medium == "Memory" and memory_root is not None:
                host_dir = memory_root / name
            plans[name] = VolumePlan(name, host_dir)
        elif "hostPath" in volume:
            plans[name] = VolumePlan(name, Path(volume["hostPath"]["path"]), create=False)
        elif "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                if "serviceAccountToken" in source:
                    ref = source["serviceAccountToken"]
                    token = lookup.service_account_token(
                        pod, ref.get("audience"), int(ref.get("expirationSeconds", 3600))
                    )
                    files[ref["path"]] = token.encode()
                    continue
                files.update(_source_files(source, pod, lookup, pod_ip, host_ip))
            plans[name] = VolumePlan(name, host_dir, files)
        elif {"configMap", "secret", "downwardAPI"} & set(volume):
            plans[name] = VolumePlan(
                name, host_dir, _source_files(volume, pod, lookup, pod_ip, host_ip)
            )
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ConfigError(
                f"volume {name}: {kinds} volumes are not supported by the pod runner",
                "ContainerCreating",
            )
    return plans


def container_mounts(
    container: Mapping[str, Any], volumes: Mapping[str, VolumePlan]
) -> list[Mount]:
    """The container's ``volumeMounts`` as host paths (``subPath`` honoured)."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        plan = volumes.get(mount["name"])
        if plan is None:
            raise ConfigError(f"volumeMount {mount['name']!r} names no volume of the pod")
        host = plan.host_dir / mount["subPath"] if mount.get("subPath") else plan.host_dir
        mounts.append(Mount(mount["mountPath"].rstrip("/") or "/", host))
    return mounts


def rewrite_path(value: str, mounts: Sequence[Mount]) -> str:
    """``value`` with a leading mount path replaced by its host path (deepest mount wins).

    Only whole path components match: with a mount at ``/work``, ``/work/x`` and
    ``/work`` are rewritten, ``/workspace`` is not.
    """
    for mount in sorted(mounts, key=lambda m: len(m.container_path), reverse=True):
        root = mount.container_path
        if value == root:
            return str(mount.host_path)
        if value.startswith(root.rstrip("/") + "/"):
            return str(mount.host_path / value[len(root.rstrip("/")) + 1 :])
    return value


# -- command ---------------------------------------------------------------------------

_PYTHON = re.compile(r"^(.*/)?python(3(\.\d+)?)?$")


def command_argv(
    command: Sequence[str], args: Sequence[str], env: Mapping[str, str], python: str
) -> list[str]:
    """argv of the process: ``command`` + ``args`` expanded, interpreters mapped."""
    if not command:
        raise ConfigError(
            "the container has no command: the pod runner runs commands, not image entrypoints"
        )
    argv = [expand(part, env) for part in [*command, *args]]
    program = argv[0]
    if _PYTHON.match(program):
        return [python, *argv[1:]]
    if os.path.basename(program) == "torchrun":
        return [python, "-m", "torch.distributed.run", *argv[1:]]
    if "/" not in program:
        found = shutil.which(program, path=env.get("PATH"))
        if found is None:
            raise ConfigError(f'executable "{program}" not found in $PATH', "RunContainerError")
        return [found, *argv[1:]]
    return argv


# -- everything together ---------------------------------------------------------------


@dataclass(frozen=True)
class LaunchPlan:
    """What the runner starts: argv, environment, working directory, files to prepare."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_path: Path
    volumes: dict[str, VolumePlan]
    mounts: list[Mount]


def base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runner-provided part of a pod's environment (:data:`BASE_ENV_KEYS`).

    The interpreter's directory leads ``PATH`` so that scripts installed in the
    project's environment (``kubetune-trainer``) are found as in the image.
    """
    source = os.environ if source is None else source
    env = {k: source[k] for k in BASE_ENV_KEYS if k in source}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "/usr/local/bin:/usr/bin:/bin")])
    return env


def main_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod's single container; init containers and sidecars are refused."""
    spec = pod.get("spec") or {}
    if spec.get("initContainers"):
        raise ConfigError("init containers are not supported by the pod runner")
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise ConfigError(
            f"the pod runner runs pods with exactly one container, not {len(containers)}"
        )
    return dict(containers[0])


def build_launch(
    pod: Mapping[str, Any],
    lookup: Lookup,
    pod_dir: Path,
    *,
    pod_ip: str,
    host_ip: str,
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
    memory_root: Path | None = None,
) -> LaunchPlan:
    """Everything needed to start ``pod``'s container as a process in ``pod_dir``."""
    container = main_container(pod)
    volumes = plan_volumes(
        pod, lookup, pod_dir, pod_ip=pod_ip, host_ip=host_ip, memory_root=memory_root
    )
    mounts = container_mounts(container, volumes)
    declared = resolve_env(pod, container, lookup, pod_ip=pod_ip, host_ip=host_ip)
    termination = pod_dir / TERMINATION_FILE
    message_path = container.get("terminationMessagePath", "/dev/termination-log")
    env = dict(base_environment(base_env))
    env["HOSTNAME"] = pod["metadata"]["name"]
    env["HOME"] = str(pod_dir / "home")
    for name, value in declared.items():
        env[name] = str(termination) if value == message_path else rewrite_path(value, mounts)
    tmp = next((m.host_path for m in mounts if m.container_path == "/tmp"), None)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    site = str(SITE_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
    env[POD_IP_ENV] = pod_ip
    argv = command_argv(container.get("command") or [], container.get("args") or [], env, python)
    argv = [argv[0], *(rewrite_path(a, mounts) for a in argv[1:])]
    working_dir = container.get("workingDir")
    cwd = pod_dir / "home"
    if working_dir:
        mapped = rewrite_path(working_dir, mounts)
        # A directory of the image that no volume covers: a private one stands in.
        cwd = Path(mapped) if mapped != working_dir else pod_dir / "rootfs" / mapped.lstrip("/")
    return LaunchPlan(argv, env, cwd, termination, volumes, mounts)
