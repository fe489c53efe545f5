"""Build the control-plane binaries from the Go module proxy and cache them by version.

Why build from source: the machines this project runs on have no container engine and
reach only the package registries, so there is no kind/k3d image and no release tarball
to download. The Go module proxy is reachable, so every binary is compiled from its
module:

* ``k8s.io/kubernetes`` cannot be ``go install``-ed: its ``go.mod`` replaces the staging
  modules (``k8s.io/api`` ...) with local paths and requires them at ``v0.0.0``. A small
  wrapper module of our own requires ``k8s.io/kubernetes`` and replaces every staging
  module with its published ``v0.<minor>.<patch>``; then ``go build`` works.
* ``go.etcd.io/etcd/server/v3`` has replace lines too, so it also gets a wrapper module
  (its requirements name published versions, so no replace lines are needed in ours).
* kwok, helm, containerd and CoreDNS have no replace lines and are ``go install``-ed
  directly.
* The real node's kubelet and kube-proxy come from the same Kubernetes wrapper module,
  and its pause container from ``build/pause/linux/pause.c`` in the Kubernetes module
  source, compiled statically with the C compiler (no image can be pulled).
* The storage emulators the trainer's gs:// and az:// tests run against: fake-gcs-server
  (a Go module, ``go install``-ed) and Azurite (an npm package, ``npm install``-ed into
  its cache directory; Node.js must be on PATH).
* The MLflow tracking server (PyPI ``mlflow``) in a virtual environment of its own
  under ``src/`` (a venv cannot be moved, so the cached ``mlflow`` is a link into it): the
  full server's dependencies must not change the trainer's tested stack.
* Argo CD's health assessment (``argocd-health``) is a program of ours
  (``devenv/argocd/main.go``) built against ``github.com/argoproj/argo-cd/v3``; its
  go.mod has replace lines too, which the wrapper module copies (minus the in-repo
  ``=> ./...`` ones), under the newer Go toolchain Argo CD asks for.

Binaries land in ``${XDG_CACHE_HOME:-~/.cache}/kubetune/bin/<component>-<version>/``;
wrapper modules and build logs live next to them (``src/``, ``logs/``). GOMODCACHE and
GOCACHE are the user's, so a version bump only recompiles what changed. A finished
build leaves a ``.built`` stamp; a warm run checks stamps and returns in well under a
second. Builds take a file lock, so concurrent pytest sessions do not build twice.

Run ``python -m devenv build`` to build everything.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devenv import versions

Log = Callable[[str], None]

#: Peak memory of one cold Kubernetes build with ``-p 2`` stays below this; a second
#: build runs next to it only when this much more memory is available.
_PARALLEL_BUILD_MIN_AVAILABLE = 8 * 1024**3


class BuildError(RuntimeError):
    """A binary could not be built; the message carries the command and its log tail."""


def cache_root() -> Path:
    """Return ``${XDG_CACHE_HOME:-~/.cache}/kubetune``: outside the repository, per user."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubetune"


@dataclass(frozen=True)
class Component:
    """One cached build unit: a name, a pinned version, the binaries it yields."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def key(self) -> str:
        """Cache directory name, ``<component>-<version>``."""
        return f"{self.name}-{self.version}"

    @property
    def bin_dir(self) -> Path:
        """Directory holding this component's binaries once built."""
        return cache_root() / "bin" / self.key

    def is_built(self) -> bool:
        """True when the stamp and every binary exist (a half-finished build has neither)."""
        d = self.bin_dir
        return (d / ".built").is_file() and all(os.access(d / b, os.X_OK) for b in self.binaries)


KUBERNETES = Component(
    "kubernetes",
    versions.KUBERNETES_VERSION,
    ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
)
ETCD = Component("etcd", versions.ETCD_VERSION, ("etcd",))
KWOK = Component("kwok", versions.KWOK_VERSION, ("kwok",))
HELM = Component("helm", versions.HELM_VERSION, ("helm",))
#: The real node: kubelet and kube-proxy (same wrapper module as the control plane),
#: the container runtime and its shim, cluster DNS, and the pod sandbox's pause binary.
KUBERNETES_NODE = Component(
    "kubernetes-node", versions.KUBERNETES_VERSION, ("kubelet", "kube-proxy")
)
CONTAINERD = Component(
    "containerd", versions.CONTAINERD_VERSION, ("containerd", "containerd-shim-runc-v2", "ctr")
)
COREDNS = Component("coredns", versions.COREDNS_VERSION, ("coredns",))
PAUSE = Component("pause", versions.KUBERNETES_VERSION, ("pause",))
#: Storage emulators: Google Cloud Storage (Go) and Azure Blob Storage (Node.js).
FAKE_GCS_SERVER = Component(
    "fake-gcs-server", versions.FAKE_GCS_SERVER_VERSION, ("fake-gcs-server",)
)
AZURITE = Component("azurite", versions.AZURITE_VERSION, ("azurite-blob",))
#: The MLflow tracking server the trainer's mlflow tests report to.
MLFLOW = Component("mlflow", versions.MLFLOW_VERSION, ("mlflow",))
#: Argo CD's own health evaluation of resources (tests of the chart's health check).
ARGOCD_HEALTH = Component("argocd-health", versions.ARGOCD_VERSION, ("argocd-health",))
COMPONENTS: tuple[Component, ...] = (
    KUBERNETES,
    ETCD,
    KWOK,
    HELM,
    KUBERNETES_NODE,
    CONTAINERD,
    COREDNS,
    PAUSE,
    FAKE_GCS_SERVER,
    AZURITE,
    MLFLOW,
    ARGOCD_HEALTH,
)


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every control-plane binary (built or not)."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    helm: Path


@dataclass(frozen=True)
class NodeBinaries:
    """Absolute paths of the real node's binaries (built or not)."""

    kubelet: Path
    kube_proxy: Path
    containerd: Path
    containerd_shim: Path
    ctr: Path
    coredns: Path
    pause: Path


def binaries() -> Binaries:
    """Return where the pinned binaries live in the cache; see :func:`ensure_built`."""
    k = KUBERNETES.bin_dir
    return Binaries(
        kube_apiserver=k / "kube-apiserver",
        kube_controller_manager=k / "kube-controller-manager",
        kube_scheduler=k / "kube-scheduler",
        kubectl=k / "kubectl",
        etcd=ETCD.bin_dir / "etcd",
        kwok=KWOK.bin_dir / "kwok",
        helm=HELM.bin_dir / "helm",
    )


def node_binaries() -> NodeBinaries:
    """Return where the real node's pinned binaries live in the cache."""
    return NodeBinaries(
        kubelet=KUBERNETES_NODE.bin_dir / "kubelet",
        kube_proxy=KUBERNETES_NODE.bin_dir / "kube-proxy",
        containerd=CONTAINERD.bin_dir / "containerd",
        containerd_shim=CONTAINERD.bin_dir / "containerd-shim-runc-v2",
        ctr=CONTAINERD.bin_dir / "ctr",
        coredns=COREDNS.bin_dir / "coredns",
        pause=PAUSE.bin_dir / "pause",
    )


def _default_log(msg: str) -> None:
    print(f"[devenv build] {msg}", file=sys.stderr, flush=True)


def _mem_available() -> int:
    """Bytes of MemAvailable from /proc/meminfo (0 when unknown: then build serially)."""
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries: no C toolchain needed, and they run on any glibc.
    env["CGO_ENABLED"] = "0"
    # Wrapper modules are not git repositories; -mod=mod lets go resolve go.sum itself.
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -buildvcs=false -mod=mod").strip()
    return env


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain ('go') is not on PATH; install Go >= 1.26 to build the "
            "control plane (see .ci/install-system.sh)"
        )
    return go


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(
    args: Sequence[str],
    *,
    cwd: Path,
    logfile: Path,
    log: Log,
    env: dict[str, str] | None = None,
) -> str:
    """Run a go command, appending its output to ``logfile``; raise with the tail on error."""
    log(f"$ {' '.join(args)}  (in {cwd})")
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(args)}\n")
        out.flush()
        proc = subprocess.run(
            list(args),
            cwd=cwd,
            env={**_go_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            check=False,
        )
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise BuildError(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n"
            f"(cwd {cwd}, full log {logfile})\n--- log tail ---\n{_tail(logfile)}"
        )
    return proc.stdout


def _download_gomod(
    module: str,
    version: str,
    *,
    cwd: Path,
    logfile: Path,
    log: Log,
    env: dict[str, str] | None = None,
) -> str:
    """Return the text of ``module@version``'s go.mod, fetched through the module proxy."""
    out = _run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        logfile=logfile,
        log=log,
        env=env,
    )
    info = json.loads(out)
    if "Error" in info:
        raise BuildError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def kubernetes_wrapper_gomod(kubernetes_gomod: str, version: str) -> str:
    """Return the wrapper module's go.mod for ``k8s.io/kubernetes@version``.

    Every ``k8s.io/X => ./staging/src/k8s.io/X`` line of the release's own go.mod becomes
    ``replace k8s.io/X => k8s.io/X v0.<minor>.<patch>`` (the published staging module).
    """
    staging = versions.staging_version(version)
    lines = [
        "module kubetune.local/kubernetes-build",
        "",
        "go 1.26.0",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
    ]
    replaced = 0
    for raw in kubernetes_gomod.splitlines():
        parts = raw.split()
        if len(parts) >= 3 and parts[-1].startswith("./staging/src/") and "=>" in parts:
            mod = parts[parts.index("=>") - 1]
            lines.append(f"replace {mod} => {mod} {staging}")
            replaced += 1
    if not replaced:
        raise BuildError(f"no staging replace lines found in k8s.io/kubernetes@{version} go.mod")
    return "\n".join(lines) + "\n"


def _write_tools(src: Path, imports: Sequence[str]) -> None:
    """A ``tools`` build-tagged file so ``go mod tidy`` records the commands' dependencies."""
    body = "\n".join(f'\t_ "{i}"' for i in imports)
    (src / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{body}\n)\n")


def _kubernetes_ldflags(version: str) -> str:
    """Version ldflags as Kubernetes' own build sets them, so clients see a real version."""
    major, minor, _ = version.lstrip("v").split(".")
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


def _build_kubernetes(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    gomod = _download_gomod("k8s.io/kubernetes", c.version, cwd=src, logfile=logfile, log=log)
    (src / "go.mod").write_text(kubernetes_wrapper_gomod(gomod, c.version))
    pkgs = [f"k8s.io/kubernetes/cmd/{b}" for b in c.binaries]
    _write_tools(src, pkgs)
    _run([_go(), "mod", "tidy"], cwd=src, logfile=logfile, log=log)
    _run(
        [_go(), "build", "-ldflags", _kubernetes_ldflags(c.version), "-o", f"{out}/", *pkgs],
        cwd=src,
        logfile=logfile,
        log=log,
    )


def _build_etcd(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    # etcd's version is a constant in go.etcd.io/etcd/api/v3/version: no ldflags needed.
    (src / "go.mod").write_text(
        f"module kubetune.local/etcd-build\n\ngo 1.26.0\n\n"
        f"require go.etcd.io/etcd/server/v3 {c.version}\n"
    )
    _write_tools(src, ["go.etcd.io/etcd/server/v3"])
    _run([_go(), "mod", "tidy"], cwd=src, logfile=logfile, log=log)
    _run(
        [_go(), "build", "-ldflags", "-s -w", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
        cwd=src,
        logfile=logfile,
        log=log,
    )


#: Stage documents shipped in the kwok module that the cluster reuses (copied next to the
#: binary so that they always match its version, even after the module cache is cleaned).
KWOK_STAGE_FILES: tuple[str, ...] = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
)


def _build_kwok(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    # kwok's version is a constant (sigs.k8s.io/kwok/pkg/consts.Version).
    _run(
        [_go(), "install", "-ldflags", "-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{c.version}"],
        cwd=src,
        logfile=logfile,
        log=log,
        env={"GOBIN": str(out)},
    )
    info = json.loads(
        _run(
            [_go(), "mod", "download", "-json", f"sigs.k8s.io/kwok@{c.version}"],
            cwd=src,
            logfile=logfile,
            log=log,
        )
    )
    stages = out / "stages"
    stages.mkdir()
    for rel in KWOK_STAGE_FILES:
        shutil.copyfile(Path(info["Dir"]) / rel, stages / Path(rel).name)


def _build_helm(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    gomod = _download_gomod("helm.sh/helm/v3", c.version, cwd=src, logfile=logfile, log=log)
    # Helm's Makefile derives the Kubernetes version it reports from client-go.
    k8s_minor = "0"
    for raw in gomod.splitlines():
        parts = raw.split()
        if len(parts) == 2 and parts[0] == "k8s.io/client-go":
            k8s_minor = parts[1].lstrip("v").split(".")[1]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X helm.sh/helm/v3/internal/version.version={c.version}",
            "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
            "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={k8s_minor}",
            "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
            f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={k8s_minor}",
        ]
    )
    _run(
        [_go(), "install", "-ldflags", ldflags, f"helm.sh/helm/v3/cmd/helm@{c.version}"],
        cwd=src,
        logfile=logfile,
        log=log,
        env={"GOBIN": str(out)},
    )


def _go_install(
    c: Component,
    out: Path,
    src: Path,
    logfile: Path,
    log: Log,
    packages: Sequence[str],
    ldflags: str,
) -> None:
    """``go install pkg@version`` for each package of a module without replace lines."""
    _run(
        [_go(), "install", "-ldflags", ldflags, *(f"{pkg}@{c.version}" for pkg in packages)],
        cwd=src,
        logfile=logfile,
        log=log,
        env={"GOBIN": str(out)},
    )


def _build_containerd(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    module = "github.com/containerd/containerd/v2"
    ldflags = f"-s -w -X {module}/version.Version={c.version}"
    _go_install(c, out, src, logfile, log, [f"{module}/cmd/{b}" for b in c.binaries], ldflags)


def _build_coredns(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    _go_install(c, out, src, logfile, log, ["github.com/coredns/coredns"], "-s -w")


def _build_pause(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    """Compile Kubernetes' own pause program statically (the pod sandbox's process)."""
    info = json.loads(
        _run(
            [_go(), "mod", "download", "-json", f"k8s.io/kubernetes@{c.version}"],
            cwd=src,
            logfile=logfile,
            log=log,
        )
    )
    source = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BuildError("a C compiler (gcc) is needed for the pause binary: apt-get install gcc")
    _run(
        [
            cc,
            "-static",
            "-Os",
            "-Wall",
            f"-DVERSION={c.version}",
            "-o",
            str(out / "pause"),
            str(source),
        ],
        cwd=src,
        logfile=logfile,
        log=log,
    )


def _build_fake_gcs_server(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    _go_install(c, out, src, logfile, log, ["github.com/fsouza/fake-gcs-server"], "-s -w")


def _build_azurite(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    """``npm install`` into the component's own directory; the binary is npm's link."""
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("npm (Node.js) is needed for Azurite: apt-get install nodejs npm")
    _run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(out), f"azurite@{c.version}"],
        cwd=src,
        logfile=logfile,
        log=log,
    )
    # Relative, so that the link survives the rename of the build directory into place.
    (out / "azurite-blob").symlink_to(Path("node_modules") / ".bin" / "azurite-blob")


def _build_mlflow(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    venv = src / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], cwd=src, logfile=logfile, log=log)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    _run([*pip, f"mlflow=={c.version}"], cwd=src, logfile=logfile, log=log)
    (out / "mlflow").symlink_to(venv / "bin" / "mlflow")


ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
#: The wrapper program's source, next to this module.
ARGOCD_HEALTH_SOURCE = Path(__file__).resolve().parent / "argocd" / "main.go"


def argocd_wrapper_gomod(argocd_gomod: str, version: str) -> str:
    """Return the go.mod of the wrapper module around ``argo-cd/v3@version``.

    Replace directives only apply in the main module, so Argo CD's own (pinned
    Kubernetes libraries, old protobuf) are copied into ours; the ones pointing into its
    repository (``=> ./gitops-engine``) are dropped, and that module then resolves at
    the same published version.
    """
    replaces: list[str] = []
    in_block = False
    for raw in argocd_gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif "=>" in line:
                replaces.append(line)
        elif line == "replace (":
            in_block = True
        elif line.startswith("replace ") and "=>" in line:
            replaces.append(line.removeprefix("replace ").strip())
    kept = [r for r in replaces if not r.split("=>", 1)[1].strip().startswith("./")]
    if not kept:
        raise BuildError(f"no replace lines found in {ARGOCD_MODULE}@{version} go.mod")
    body = "\n".join(f"\t{r}" for r in kept)
    return (
        "module kubetune.local/argocd-health\n\ngo 1.27.0\n\n"
        f"require {ARGOCD_MODULE} {version}\n\nreplace (\n{body}\n)\n"
    )


def _build_argocd_health(c: Component, out: Path, src: Path, logfile: Path, log: Log) -> None:
    toolchain = {"GOTOOLCHAIN": versions.ARGOCD_GO_TOOLCHAIN}
    gomod = _download_gomod(
        ARGOCD_MODULE, c.version, cwd=src, logfile=logfile, log=log, env=toolchain
    )
    (src / "go.mod").write_text(argocd_wrapper_gomod(gomod, c.version))
    shutil.copyfile(ARGOCD_HEALTH_SOURCE, src / "main.go")
    _run([_go(), "mod", "tidy"], cwd=src, logfile=logfile, log=log, env=toolchain)
    _run(
        [_go(), "build", "-ldflags", "-s -w", "-o", str(out / "argocd-health"), "."],
        cwd=src,
        logfile=logfile,
        log=log,
        env=toolchain,
    )


_RECIPES: dict[str, Callable[[Component, Path, Path, Path, Log], None]] = {
    "kubernetes": _build_kubernetes,
    "kubernetes-node": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _build_kwok,
    "helm": _build_helm,
    "containerd": _build_containerd,
    "coredns": _build_coredns,
    "pause": _build_pause,
    "fake-gcs-server": _build_fake_gcs_server,
    "azurite": _build_azurite,
    "mlflow": _build_mlflow,
    "argocd-health": _build_argocd_health,
}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_component(c: Component, *, log: Log = _default_log) -> Path:
    """Build one component into its cache directory unless it is already there.

    The build writes into ``<key>.tmp`` and renames it into place only when every binary
    exists, so an interrupted build never looks finished.
    """
    if c.is_built():
        log(f"{c.key}: cached in {c.bin_dir}")
        return c.bin_dir
    root = cache_root()
    with _locked(root / "locks" / f"{c.key}.lock"):
        if c.is_built():  # another process finished it while we waited
            log(f"{c.key}: built by another process in {c.bin_dir}")
            return c.bin_dir
        src = root / "src" / c.key
        src.mkdir(parents=True, exist_ok=True)
        logs = root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        logfile = logs / f"{c.key}.log"
        logfile.write_text(f"build of {c.key} started {time.ctime()}\n")
        tmp = c.bin_dir.with_name(c.key + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log(f"{c.key}: building {', '.join(c.binaries)} (log: {logfile})")
        started = time.monotonic()
        _RECIPES[c.name](c, tmp, src, logfile, log)
        missing = [b for b in c.binaries if not (tmp / b).is_file()]
        if missing:
            raise BuildError(f"{c.key}: build finished but {missing} missing in {tmp}")
        elapsed = time.monotonic() - started
        (tmp / ".built").write_text(
            json.dumps(
                {
                    "component": c.name,
                    "version": c.version,
                    "seconds": round(elapsed, 1),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            + "\n"
        )
        shutil.rmtree(c.bin_dir, ignore_errors=True)
        tmp.rename(c.bin_dir)
        log(f"{c.key}: built in {elapsed:.0f}s -> {c.bin_dir}")
        return c.bin_dir


def ensure_built(
    components: Sequence[Component] = COMPONENTS, *, log: Log = _default_log
) -> Binaries:
    """Build whatever is missing from the cache and return the binaries' paths.

    Kubernetes (the long build, several GB of memory) starts first; the small builds run
    beside it only when MemAvailable leaves room for both, else one after another. With
    a warm cache this only checks stamps.
    """
    todo = [c for c in components if not c.is_built()]
    for c in components:
        if c not in todo:
            log(f"{c.key}: cached in {c.bin_dir}")
    if not todo:
        return binaries()
    _go()
    workers = 2 if len(todo) > 1 and _mem_available() >= _PARALLEL_BUILD_MIN_AVAILABLE else 1
    log(f"building {len(todo)} component(s) with {workers} parallel build(s)")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(build_component, c, log=log) for c in todo]
        errors = []
        for f in futures:
            try:
                f.result()
            except BuildError as e:
                errors.append(str(e))
    if errors:
        raise BuildError("\n\n".join(errors))
    return binaries()
