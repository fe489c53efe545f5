"""containerd for the real node and for image imports: config, process, ``ctr``.

Why containerd 2 (built from the Go module proxy) rather than Debian's 1.6: kubelet 1.36
no longer supports containerd 1.x. The settings that matter on these machines:

* runc (not crun, which refuses cgroup v1 in hybrid mode), with cgroupfs;
* ``restrict_oom_score_adj``: the VM lacks CAP_SYS_RESOURCE, so containers may not get a
  lower OOM score than containerd itself;
* the pod sandbox image pinned to a locally built pause image (nothing can be pulled);
* CNI plugins from Debian (``/usr/lib/cni``) with our own config directory, and pod
  network namespaces under the state directory instead of the host's ``/run/netns``.

The image store (``root``) is persistent, in the cache: the trainer image is several GB
and is imported once, not per test session. One containerd at a time may use it, so the
store is guarded by a file lock. Runtime state (sockets, shims, mounts) lives in a
short per-run directory (unix socket paths are limited to 108 bytes) that is removed on
stop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from devenv import build
from devenv.process import ComponentError, FileLock, Process, wait_for

#: containerd's namespace for images and containers that the kubelet (CRI) uses.
K8S_NAMESPACE = "k8s.io"
#: The pod sandbox image: the pause binary built from the Kubernetes source.
PAUSE_IMAGE = "registry.k8s.io/pause:kubetune-local"
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"


def store_root() -> Path:
    """The persistent image store shared by every run on this machine."""
    return build.cache_root() / "containerd"


def config_toml(*, root: Path, state: Path, socket: Path, cni_conf_dir: Path) -> str:
    """containerd's configuration (format version 3, read by containerd 2.x)."""
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""\
version = 3
root = '{root}'
state = '{state}'

[grpc]
  address = '{socket}'

[ttrpc]
  address = '{socket}.ttrpc'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  discard_unpacked_layers = true
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{PAUSE_IMAGE}'

[{cri_runtime}]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [{cri_runtime}.containerd]
    default_runtime_name = 'runc'
    [{cri_runtime}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{cri_runtime}.containerd.runtimes.runc.options]
        BinaryName = '{RUNC}'
        SystemdCgroup = false
  [{cri_runtime}.cni]
    bin_dirs = ['{CNI_BIN_DIR}']
    conf_dir = '{cni_conf_dir}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
"""


class Containerd:
    """One containerd process on the shared store; a context manager.

    ``netns`` runs it (and so every pod sandbox's network setup) inside the node's
    network namespace. ``start`` takes the store's lock and fails fast with a clear
    message if another run holds it.
    """

    def __init__(
        self,
        state: Path,
        *,
        cni_conf_dir: Path | None = None,
        exec_prefix: Sequence[str] = (),
        log_file: Path | None = None,
        lock_timeout: float = 600.0,
    ) -> None:
        self.bins = build.node_binaries()
        self.root = store_root()
        self.state = state
        self.socket = state / "containerd.sock"
        self.cni_conf_dir = cni_conf_dir or state / "cni"
        self.exec_prefix = list(exec_prefix)
        self.log_file = log_file or state.parent / f"{state.name}.log"
        self.lock_timeout = lock_timeout
        self.proc: Process | None = None
        self.lock = FileLock(self.root.parent / "containerd.lock", f"the image store {self.root}")

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> Containerd:
        """Write the config, start containerd and wait until ``ctr version`` answers."""
        missing = [str(p) for p in vars(self.bins).values() if not Path(p).is_file()]
        if missing:
            raise ComponentError(f"binaries missing: {missing}; run `python -m devenv build`")
        if not Path(RUNC).is_file():
            raise ComponentError(f"{RUNC} not found: apt-get install runc (.ci/install-system.sh)")
        self.lock.acquire(self.lock_timeout)
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            config = self.state / "config.toml"
            config.write_text(
                config_toml(
                    root=self.root,
                    state=self.state,
                    socket=self.socket,
                    cni_conf_dir=self.cni_conf_dir,
                )
            )
            env = {
                **os.environ,
                # containerd finds its shim on PATH.
                "PATH": f"{self.bins.containerd.parent}:{os.environ.get('PATH', '')}",
            }
            self.proc = Process(
                "containerd",
                [*self.exec_prefix, str(self.bins.containerd), f"--config={config}"],
                self.log_file,
                env=env,
            )
            wait_for(
                self.proc,
                lambda: self.ctr("version", check=False).returncode == 0,
                what="`ctr version` answers",
                timeout=timeout,
                interval=0.2,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def ctr(
        self,
        *args: str,
        check: bool = True,
        stdin: IO[bytes] | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``ctr`` against this containerd in the ``k8s.io`` namespace."""
        cmd = [
            str(self.bins.ctr),
            f"--address={self.socket}",
            f"--namespace={K8S_NAMESPACE}",
            *args,
        ]
        proc = subprocess.run(
            cmd,
            stdin=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        done = subprocess.CompletedProcess(
            cmd,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )
        if check and done.returncode != 0:
            raise ComponentError(f"`ctr {' '.join(args)}` failed: {done.stderr.strip()}")
        return done

    def image_labels(self) -> dict[str, dict[str, str]]:
        """Every image in the ``k8s.io`` namespace -> its labels."""
        out = self.ctr("images", "ls").stdout.splitlines()[1:]
        images: dict[str, dict[str, str]] = {}
        for line in out:
            fields = line.split()
            if not fields:
                continue
            labels = fields[-1] if "=" in fields[-1] else ""
            images[fields[0]] = dict(
                item.split("=", 1) for item in labels.split(",") if "=" in item
            )
        return images

    def import_archive(self, archive: IO[bytes], labels: dict[str, str], timeout: float) -> None:
        """Import a docker/OCI archive from a stream, unpacking it for the CRI and letting
        containerd drop the compressed layers afterwards (the image is stored once)."""
        label_args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
        self.ctr(
            "images",
            "import",
            "--local",
            "--discard-unpacked-layers",
            *label_args,
            "-",
            stdin=archive,
            timeout=timeout,
        )

    def _image_digests(self) -> dict[str, str]:
        """Every image reference -> the digest of the manifest it names."""
        rows = (line.split() for line in self.ctr("images", "ls").stdout.splitlines()[1:])
        return {fields[0]: fields[2] for fields in rows if len(fields) >= 3}

    def remove_image(self, ref: str) -> None:
        """Delete ``ref`` (if present) with the references by image ID (``sha256:...``) the
        CRI adds to the same image, which would keep its layers alive; containerd collects
        them at once."""
        digests = self._image_digests()
        if ref not in digests:
            return
        same = [other for other, digest in digests.items() if digest == digests[ref]]
        self.ctr("images", "rm", "--sync", *same, check=False)

    def remove_unnamed_images(self) -> None:
        """Delete the CRI's image-ID references whose named image is gone (replaced by a
        newer build before :meth:`remove_image` took them along)."""
        digests = self._image_digests()
        named = {digest for ref, digest in digests.items() if not ref.startswith("sha256:")}
        stale = [ref for ref, digest in digests.items() if digest not in named]
        if stale:
            self.ctr("images", "rm", "--sync", *stale, check=False)

    def remove_containers(self) -> None:
        """Kill and remove every container left in the namespace (a crashed run's, or the
        last pods' after the kubelet stopped), so a new kubelet starts from nothing."""
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        for task in tasks:
            self.ctr("tasks", "delete", "--force", task, check=False)
        for container in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "delete", container, check=False)

    def stop(self) -> None:
        """Stop containerd, kill shims it left, unmount what they mounted, remove the state."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        _kill_processes_mentioning(str(self.state))
        unmount_below(self.state)
        shutil.rmtree(self.state, ignore_errors=True)
        self.lock.release()


def _kill_processes_mentioning(text: str) -> None:
    """SIGKILL every process whose command line contains ``text`` (the shims of a state
    directory: they daemonize, so stopping containerd does not stop them)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path.resolve())
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_below(path: Path) -> None:
    """Lazily unmount everything at or below ``path`` (what a killed process left)."""
    if not path.exists():
        return
    for point in mounts_below(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
