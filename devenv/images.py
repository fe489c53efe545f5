"""The project's container images, built on this machine without a registry.

Why this way: no image can be pulled here, but Debian packages can. So the base image is
made from Debian packages with mmdebstrap and imported into podman, and the project's
own Dockerfiles (``trainer-image/Dockerfile``, ``deploy/operator.Dockerfile``, unchanged:
what a user builds with docker elsewhere) are built by podman on top of it, their base
image passed as a build argument. Each image is then streamed into containerd's store
(``podman save | ctr images import``), where the real node's kubelet finds it under the
name the chart and the operator use by default; podman's copy of the finished image is
removed with its build stages, so the large trainer image is stored once (a rebuild
after a change of the sources starts again from the base image).

What this build machine needs and a user's build does not:

* HTTPS to the package registries is signed by a local CA that the host trusts. The base
  image gets the host's local CA certificates (``/usr/local/share/ca-certificates``) and
  ``PIP_CERT`` pointing at the system bundle, because pip's own bundle does not know that
  CA. This exists only in the locally built base, never in a Dockerfile.
* podman runs with runc (crun refuses cgroup v1 in hybrid mode), cgroupfs, and fixed
  ulimits (the VM lacks CAP_SYS_RESOURCE to raise them), from a ``containers.conf`` of
  our own; its storage lives in the cache, not in ``/var/lib/containers``.

Caching: every image has a key, the SHA-256 of its inputs: the Dockerfile, the build
arguments, the base image's key, and every file of the build context that
``.dockerignore`` lets through and one of the Dockerfile's ``COPY`` lines names (so an
operator change does not rebuild the trainer image, nor the reverse). The key is stored
as the label ``kubetune.io/inputs`` on the image in containerd; a run whose keys all match
builds nothing.

``python -m devenv images`` (``make images``) builds what is stale and prints each
image's size and build time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from devenv import build
from devenv.containerd import PAUSE_IMAGE, Containerd
from devenv.process import ComponentError
from kubetune import __version__
from kubetune.render.options import DEFAULT_TRAINER_IMAGE

Log = Callable[[str], None]

ROOT = Path(__file__).resolve().parents[1]
INPUTS_LABEL = "kubetune.io/inputs"
DEBIAN_SUITE = "bookworm"
#: ``python-is-python3``: the operator Dockerfile (written for the python image) runs
#: ``python``; the Debian base has only ``python3`` without it.
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_IMAGE = "localhost/kubetune/debian-base"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
OPERATOR_IMAGE = f"ghcr.io/kubetune/operator:{__version__}"


@dataclass(frozen=True)
class ImageSpec:
    """One of the project's images: its Dockerfile, the build argument naming its base
    image, and the reference the chart and the operator use by default."""

    name: str
    dockerfile: Path
    base_arg: str
    ref: str
    root: Path = ROOT
    """The build context: this checkout, or an earlier release's tree (upgrade tests)."""


TRAINER = ImageSpec(
    "trainer", ROOT / "trainer-image" / "Dockerfile", "CUDA_IMAGE", DEFAULT_TRAINER_IMAGE
)
OPERATOR = ImageSpec(
    "operator", ROOT / "deploy" / "operator.Dockerfile", "PYTHON_IMAGE", OPERATOR_IMAGE
)
IMAGES: tuple[ImageSpec, ...] = (TRAINER, OPERATOR)


@dataclass
class Built:
    """What a run did for one image."""

    ref: str
    key: str
    built: bool
    seconds: float = 0.0
    size_bytes: int = 0


# -- build context and keys ---------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex (Go ``filepath.Match`` plus ``**``)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(out)


def _ignore_rules(dockerignore: str) -> list[tuple[re.Pattern[str], bool]]:
    rules = []
    for raw in dockerignore.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        rules.append((_pattern_regex(pattern), negated))
    return rules


def context_files(files: Iterable[str], dockerignore: str) -> list[str]:
    """The files of ``files`` (paths relative to the context) that a docker-compatible
    builder sends, by the ``.dockerignore`` rules: the last matching pattern decides, and
    a pattern that matches a directory matches everything below it."""
    rules = _ignore_rules(dockerignore)
    kept = []
    for path in files:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        included = True
        for regex, negated in rules:
            if any(regex.fullmatch(p) for p in prefixes):
                included = negated
        if included:
            kept.append(path)
    return sorted(kept)


def _repository_files(root: Path) -> list[str]:
    """Tracked files plus untracked files git does not ignore (what a checkout holds);
    every file of a tree that is no checkout (an exported release)."""
    if not (root / ".git").exists():
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    )
    names = [n for n in proc.stdout.decode().split("\0") if n]
    return [n for n in names if (root / n).is_file()]


def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


def copy_sources(dockerfile: str) -> list[str]:
    """The context paths a Dockerfile's ``COPY`` instructions read (``--from`` stages and
    options left out): a file is an input when it is one of them or lies under one."""
    sources: list[str] = []
    for line in dockerfile.splitlines():
        words = line.split()
        if not words or words[0].upper() != "COPY":
            continue
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words[1:] if not w.startswith("--")]
        sources += [p.removeprefix("./").rstrip("/") for p in paths[:-1]]
    return sources


def image_files(files: Iterable[str], dockerignore: str, dockerfile: str) -> list[str]:
    """The context files that end up in the image: let through by ``.dockerignore`` and
    read by a ``COPY``."""
    sources = copy_sources(dockerfile)
    return [
        name
        for name in context_files(files, dockerignore)
        if any(name == s or name.startswith(f"{s}/") for s in sources)
    ]


def image_key(spec: ImageSpec, base_key: str) -> str:
    """The SHA-256 of everything that goes into ``spec``'s image."""
    root = spec.root
    dockerignore = (root / ".dockerignore").read_text()
    dockerfile = spec.dockerfile.read_text()
    files = image_files(_repository_files(root), dockerignore, dockerfile)

    def chunks() -> Iterable[bytes]:
        yield spec.dockerfile.read_bytes()
        yield f"{spec.base_arg}={base_key}".encode()
        for name in files:
            yield name.encode()
            yield (root / name).read_bytes()

    return _digest(chunks())


def _local_ca_files() -> list[Path]:
    return sorted(LOCAL_CA_DIR.glob("*.crt")) if LOCAL_CA_DIR.is_dir() else []


def base_key() -> str:
    """Key of the Debian base: suite, packages and the local CA certificates."""
    parts = [DEBIAN_SUITE.encode(), " ".join(BASE_PACKAGES).encode()]
    parts += [p.read_bytes() for p in _local_ca_files()]
    return _digest(parts)


# -- podman ----------------------------------------------------------------------------------


def _require(program: str, package: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise ComponentError(
            f"{program!r} not found: apt-get install {package} (.ci/install-system.sh does)"
        )
    return found


class Podman:
    """podman with this project's storage and settings (see the module docstring)."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or build.cache_root() / "podman"
        self.program = _require("podman", "podman")
        _require("runc", "runc")
        self.conf = self.home / "containers.conf"
        # podman and buildah put layer tarballs of several GB in /var/tmp while they commit;
        # a killed build leaves them there for good. Ours go here and are wiped per build.
        self.tmp = self.home / "tmp"

    def _write_conf(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'image_copy_tmp_dir = "{self.tmp}"\n'
        )

    def clear_leftovers(self, log_file: Path) -> None:
        """Free what builds leave: temporary files, buildah's working containers (a stage
        copied from keeps one) and the dangling layers they held."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        working = self.run("ps", "--all", "--external", "--quiet").split()
        if working:
            self.run("rm", "--force", *working, log_file=log_file)
        self.run("image", "prune", "--force", log_file=log_file)

    def command(self, *args: str) -> list[str]:
        """A podman command line on our storage."""
        return [
            self.program,
            f"--root={self.home / 'storage'}",
            f"--runroot={self.home / 'run'}",
            "--storage-driver=overlay",
            *args,
        ]

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf), "TMPDIR": str(self.tmp)}

    def run(self, *args: str, log_file: Path | None = None) -> str:
        """Run podman; stdout is returned, or appended with stderr to ``log_file``."""
        self._write_conf()
        cmd = self.command(*args)
        if log_file is None:
            proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise ComponentError(f"`podman {' '.join(args)}` failed:\n{proc.stderr.strip()}")
            return proc.stdout
        with log_file.open("a") as out:
            out.write(f"\n$ {' '.join(cmd)}\n")
            out.flush()
            logged = subprocess.run(
                cmd, env=self.env(), stdout=out, stderr=subprocess.STDOUT, check=False
            )
        if logged.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
            raise ComponentError(
                f"`podman {' '.join(args[:2])} ...` failed (exit {logged.returncode}); "
                f"log {log_file}:\n{tail}"
            )
        return ""

    def exists(self, ref: str) -> bool:
        self._write_conf()
        cmd = self.command("image", "exists", ref)
        return subprocess.run(cmd, env=self.env(), check=False).returncode == 0

    def size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).strip() or 0)

    def save_into(self, ref: str, containerd: Containerd, labels: dict[str, str]) -> None:
        """Stream ``ref`` as a docker archive into containerd (no archive on disk)."""
        self._write_conf()
        save = subprocess.Popen(
            self.command("save", "--format", "docker-archive", ref),
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert save.stdout is not None
        try:
            containerd.import_archive(save.stdout, labels, timeout=1800)
        finally:
            save.stdout.close()
            _, err = save.communicate(timeout=60)
        if save.returncode != 0:
            raise ComponentError(f"`podman save {ref}` failed: {err.decode(errors='replace')}")


# -- the images ------------------------------------------------------------------------------


def _build_base(podman: Podman, ref: str, logs: Path, log: Log) -> None:
    """mmdebstrap a minimal Debian with Python, import it into podman as ``ref``."""
    mmdebstrap = _require("mmdebstrap", "mmdebstrap")
    with tempfile.TemporaryDirectory(prefix="kubetune-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        hooks = [
            f'--customize-hook=mkdir -p "$1{LOCAL_CA_DIR}"',
            *(f'--customize-hook=cp {ca} "$1{LOCAL_CA_DIR}/"' for ca in _local_ca_files()),
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
        cmd = [
            mmdebstrap,
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(BASE_PACKAGES)}",
            *hooks,
            DEBIAN_SUITE,
            str(tarball),
        ]
        log(f"base: mmdebstrap {DEBIAN_SUITE} ({', '.join(BASE_PACKAGES)})")
        with (logs / "base.log").open("a") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = "\n".join((logs / "base.log").read_text(errors="replace").splitlines()[-30:])
            raise ComponentError(f"mmdebstrap failed (exit {proc.returncode}):\n{tail}")
        podman.run(
            "import",
            f"--change=ENV PIP_CERT={SYSTEM_CA_BUNDLE}",
            "--change=ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change=CMD /bin/bash",
            str(tarball),
            ref,
            log_file=logs / "base.log",
        )


def ensure_base(podman: Podman, logs: Path, log: Log) -> str:
    """The base image's reference, built if podman lacks it."""
    ref = f"{BASE_IMAGE}:{DEBIAN_SUITE}-{base_key()[:12]}"
    if not podman.exists(ref):
        started = time.monotonic()
        _build_base(podman, ref, logs, log)
        log(
            f"base: {ref} built in {time.monotonic() - started:.0f}s, "
            f"{podman.size(ref) / 1e6:.0f} MB"
        )
    return ref


def pause_archive(binary: Path, ref: str = PAUSE_IMAGE) -> bytes:
    """An OCI image archive holding only the static pause binary as ``/pause``.

    Written directly (one layer, a config, a manifest): the sandbox image needs nothing
    else, and a tar built here is the same bytes on every run.
    """

    def tar_bytes(members: Sequence[tuple[str, bytes, int]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data, mode in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, 0
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def blob(data: bytes) -> tuple[str, bytes]:
        return f"sha256:{hashlib.sha256(data).hexdigest()}", data

    layer = tar_bytes([("pause", binary.read_bytes(), 0o755)])
    layer_digest, _ = blob(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest, _ = blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest, _ = blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                    },
                }
            ],
        }
    ).encode()
    members = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
        ("index.json", index, 0o644),
    ]
    members += [
        (f"blobs/sha256/{digest.split(':')[1]}", data, 0o644)
        for digest, data in (blob(layer), blob(config), blob(manifest))
    ]
    return tar_bytes(members)


def _import_pause(containerd: Containerd, present: dict[str, dict[str, str]]) -> None:
    binary = build.node_binaries().pause
    key = _digest([binary.read_bytes()])
    if present.get(PAUSE_IMAGE, {}).get(INPUTS_LABEL) == key:
        return
    with tempfile.TemporaryFile() as archive:
        archive.write(pause_archive(binary))
        archive.seek(0)
        containerd.import_archive(archive, {INPUTS_LABEL: key}, timeout=60)


def ensure_images(
    containerd: Containerd | None = None,
    *,
    images: Sequence[ImageSpec] = IMAGES,
    log: Log = lambda m: print(f"[devenv images] {m}", flush=True),
) -> list[Built]:
    """Build every stale image and import it into containerd's store; return a report.

    ``containerd``: a running one (the node's); by default a temporary containerd on the
    same store is started for the import and stopped again.
    """
    if containerd is None:
        state = Path(tempfile.mkdtemp(prefix="kt-ctrd-", dir="/tmp"))
        with Containerd(state) as temporary:
            return ensure_images(temporary, images=images, log=log)
    logs = build.cache_root() / "logs" / "images"
    logs.mkdir(parents=True, exist_ok=True)
    containerd.remove_unnamed_images()
    present = containerd.image_labels()
    _import_pause(containerd, present)
    podman: Podman | None = None
    base_ref = ""
    report = []
    for spec in images:
        if podman is None:
            podman = Podman()
            base_ref = ensure_base(podman, logs, log)
        key = image_key(spec, base_ref)
        if present.get(spec.ref, {}).get(INPUTS_LABEL) == key:
            report.append(Built(spec.ref, key, built=False))
            continue
        report.append(_build_and_import(spec, key, base_ref, podman, containerd, logs, log))
    for item in report:
        if not item.built:
            log(f"{item.ref}: up to date (inputs {item.key[:12]})")
    return report


def _build_and_import(
    spec: ImageSpec,
    key: str,
    base_ref: str,
    podman: Podman,
    containerd: Containerd,
    logs: Path,
    log: Log,
) -> Built:
    log_file = logs / f"{spec.name}.log"
    log_file.write_text(f"build of {spec.ref} (inputs {key}) started {time.ctime()}\n")
    log(
        f"{spec.ref}: building {spec.dockerfile.relative_to(spec.root)} in {spec.root} "
        f"on {base_ref} (log {log_file})"
    )
    started = time.monotonic()
    podman.clear_leftovers(log_file)
    # The stale copy in containerd goes first: the trainer image is several GB, and the disk
    # need not hold two of them while the new one is imported.
    containerd.remove_image(spec.ref)
    podman.run(
        "build",
        "--pull=never",
        "--network=host",
        f"--build-arg={spec.base_arg}={base_ref}",
        "--build-arg=REVISION=" + key[:12],
        f"--file={spec.dockerfile}",
        f"--tag={spec.ref}",
        str(spec.root),
        log_file=log_file,
    )
    built_seconds = time.monotonic() - started
    size = podman.size(spec.ref)
    log(
        f"{spec.ref}: built in {built_seconds:.0f}s, {size / 1e9:.2f} GB; importing into containerd"
    )
    imported = time.monotonic()
    podman.save_into(spec.ref, containerd, {INPUTS_LABEL: key})
    # containerd holds the image now; podman's copy and its build stages (several GB for
    # the trainer) would only store it twice. The base image stays for the next build.
    podman.run("rmi", spec.ref, log_file=log_file)
    podman.clear_leftovers(log_file)
    log(f"{spec.ref}: imported in {time.monotonic() - imported:.0f}s")
    return Built(spec.ref, key, built=True, seconds=time.monotonic() - started, size_bytes=size)
