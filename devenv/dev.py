"""``make dev-cluster`` (``python -m devenv dev``): a whole kubetune installation on one
machine, training for real.

What it starts, in order (everything on this machine, in one work directory):

1. a real control plane (:mod:`devenv.cluster`) without fake nodes;
2. a real node (:mod:`devenv.node`: containerd, kubelet, kube-proxy, CoreDNS), untainted,
   with the project's images built (or reused) and imported first (:mod:`devenv.images`);
3. S3 (SeaweedFS, :mod:`devenv.s3`) with the bucket ``kubetune``; the quickstart dataset
   (``examples/quickstart-data/``) is uploaded to ``s3://kubetune/quickstart-data/``;
4. the FineTuneJob CRD, and the Secret ``s3-credentials`` in ``default`` (the keys
   ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` (the address pods
   reach S3 at), ``AWS_DEFAULT_REGION``) that ``examples/quickstart-cluster.yaml`` names;
5. the operator, ``kubetune operator --all-namespaces --standalone``, as a process on the
   host (edit, restart, no image rebuild); the trainer pods it creates run in containers
   on the real node, from the trainer image.

Then ``kubectl apply -f examples/quickstart-cluster.yaml`` trains the tiny model and
the adapter lands in ``s3://kubetune/quickstart/``. The pieces are functions so that the
end-to-end tests assemble the same installation from their own fixtures.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devenv import build
from devenv.cluster import ControlPlane
from devenv.node import RealNode
from devenv.process import Process, free_port, poll, wait_for
from devenv.s3 import S3Server

Log = Callable[[str], None]

BUCKET = "kubetune"
SECRET_NAME = "s3-credentials"
DATA_PREFIX = "quickstart-data"
#: The repository's examples (``kubetune dev`` runs from a source checkout).
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def install_crd(cp: ControlPlane, path: Path | None = None) -> None:
    """Apply the FineTuneJob CRD generated from the API models (or the file ``path``, a
    CRD under development); wait until it is served."""
    from kubetune_contract.api.crd import render_crd_yaml

    manifest = path.read_text() if path else render_crd_yaml()
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    # Polled rather than `kubectl wait`, which fails while the new CRD has no conditions.
    poll(
        lambda: cp.kubectl("get", "finetunejobs", "-A", check=False).returncode == 0,
        what="finetunejobs are served",
    )


def s3_secret(s3: S3Server, name: str = SECRET_NAME) -> dict[str, Any]:
    """The Secret with the S3 server's credentials and endpoint, as the trainer reads them."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_ENDPOINT_URL": s3.pod_endpoint,
            "AWS_DEFAULT_REGION": s3.region,
        },
    }


def create_s3_secret(cp: ControlPlane, s3: S3Server, namespace: str = "default") -> None:
    cp.request("POST", f"/api/v1/namespaces/{namespace}/secrets", s3_secret(s3))


def upload_dir(s3: S3Server, local: Path, bucket: str, prefix: str) -> list[str]:
    """Upload every file below ``local`` to ``s3://bucket/prefix/...``; return the keys."""
    client = s3.client()
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(local).as_posix()}"
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def operator_command(metrics_port: int, *args: str) -> list[str]:
    """``kubetune operator`` of this environment (its console script, else through this
    interpreter)."""
    script = Path(sysconfig.get_path("scripts")) / "kubetune"
    if script.is_file():
        program = [str(script)]
    else:
        program = [
            sys.executable,
            "-c",
            "import sys; from kubetune.cli import main; sys.exit(main())",
        ]
    return [*program, "operator", f"--metrics-port={metrics_port}", *args]


def start_operator(
    cp: ControlPlane,
    log_file: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[Process, int]:
    """Start the operator as a child process; return it and its metrics port once
    ``/metrics`` answers (kopf is then watching)."""
    port = free_port()
    proc = Process(
        "kubetune-operator",
        operator_command(port, *args),
        log_file,
        env={**cp.env(), **(env or {})},
    )

    def metrics() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return bool(r.status == 200)

    try:
        wait_for(proc, metrics, what="the operator's /metrics answers", timeout=timeout)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def _default_log(msg: str) -> None:
    print(f"[kubetune dev] {msg}", flush=True)


class DevEnvironment:
    """Control plane + real node + S3 + CRD + Secret + operator (module docstring)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        operator: bool = True,
        crd: Path | None = None,
        data: Path = EXAMPLES / "quickstart-data",
        log: Log = _default_log,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubetune-dev-"))
        self.run_operator = operator
        self.crd = crd
        self.data = data
        self.log = log
        self.cp: ControlPlane | None = None
        self.s3: S3Server | None = None
        self.operator: Process | None = None
        self.operator_metrics_port: int | None = None
        self.node: RealNode | None = None
        self.ready_seconds: float | None = None

    def __enter__(self) -> DevEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> DevEnvironment:
        """Start everything (see the module docstring); on failure stop what started."""
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        bins = build.ensure_built()
        self.cp = ControlPlane(self.workdir / "cluster", nodes=(), binaries=bins, log=self.log)
        self.cp.start()
        self.node = RealNode(self.cp, self.workdir / "node", tainted=False, log=self.log)
        self.node.start()
        self.s3 = S3Server(buckets=(BUCKET,), workdir=self.workdir / "s3", log=self.log)
        self.s3.start()
        keys = upload_dir(self.s3, self.data, BUCKET, DATA_PREFIX)
        self.log(f"uploaded {len(keys)} files to s3://{BUCKET}/{DATA_PREFIX}/")
        install_crd(self.cp, self.crd)
        create_s3_secret(self.cp, self.s3)
        if self.run_operator:
            self.log("starting the operator")
            self.operator, self.operator_metrics_port = start_operator(
                self.cp,
                self.workdir / "operator.log",
                "--all-namespaces",
                "--standalone",
                "--progress-interval=5",
            )

    def stop(self) -> None:
        """Stop in reverse order; remove the work directory when it was created here."""
        if self.operator is not None:
            self.operator.stop()
            self.operator = None
        if self.s3 is not None:
            self.s3.stop()
            self.s3 = None
        if self.node is not None:
            self.node.stop()
            self.node = None
        if self.cp is not None:
            self.cp.stop()
            self.cp = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def check_alive(self) -> None:
        """Raise :class:`~devenv.process.ComponentError` (with the log tail)
        if a component died."""
        if self.cp is not None:
            self.cp.check_alive()
        if self.node is not None:
            self.node.check_alive()
        for proc in (self.operator, self.s3.proc if self.s3 else None):
            if proc is not None and not proc.alive():
                raise proc.failure("died")

    def settings(self) -> str:
        """What a developer needs: shell exports, S3 settings, where the logs are."""
        if self.cp is None or self.s3 is None:
            raise RuntimeError("the dev environment is not started")
        bins = self.cp.bins
        lines = [
            f"# kubetune dev environment (ready in {self.ready_seconds or 0:.1f}s)",
            f"export KUBECONFIG={self.cp.kubeconfig}",
            f"export PATH={bins.kubectl.parent}:{bins.helm.parent}:$PATH",
            f"# S3 (bucket {BUCKET}; Secret default/{SECRET_NAME} holds the same):",
            f"export AWS_ENDPOINT_URL={self.s3.endpoint}",
            f"export AWS_ACCESS_KEY_ID={self.s3.access_key}",
            f"export AWS_SECRET_ACCESS_KEY={self.s3.secret_key}",
            f"export AWS_DEFAULT_REGION={self.s3.region}",
            f"# operator log: {self.workdir / 'operator.log'}"
            if self.run_operator
            else "# operator: not started (run `kubetune operator --all-namespaces --standalone`)",
            f"# node logs (containerd, kubelet, kube-proxy, coredns): {self.workdir / 'node/logs'}",
            "# pod logs: kubectl logs <pod> (or kubetune logs <finetunejob>)",
        ]
        return "\n".join(lines) + "\n"


def write_env_file(env: DevEnvironment) -> Path:
    """``<workdir>/env.sh`` for ``source`` in another shell."""
    path = env.workdir / "env.sh"
    path.write_text(env.settings())
    return path
