"""Google Cloud Storage and Azure Blob Storage on loopback: fake-gcs-server and Azurite.

Why these two: they are the emulators the clouds' own SDKs are tested against, and the
trainer reaches them with the clients users run (gcsfs on google-cloud-storage's auth,
adlfs on azure-storage-blob), pointed elsewhere only by the environment a Secret would
carry: ``STORAGE_EMULATOR_HOST`` for GCS, ``AZURE_STORAGE_CONNECTION_STRING`` for Azure.
Both are built or installed from the registries into the binary cache
(:data:`devenv.build.FAKE_GCS_SERVER`, :data:`devenv.build.AZURITE`).

Each server takes a free port on 127.0.0.1, creates its bucket (container) at start and
offers :meth:`env` and :attr:`uri` (``gs://kubetune`` / ``az://kubetune``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devenv import build
from devenv.process import LocalServer, free_port

Log = Callable[[str], None]
BUCKET = "kubetune"


class FakeGcsServer(LocalServer):
    """fake-gcs-server over plain HTTP with an in-memory backend."""

    scheme = "gs"

    def __init__(self, *, workdir: Path | None = None, log: Log | None = None) -> None:
        super().__init__(workdir, "kubetune-gcs-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.uri = f"gs://{BUCKET}"
        self.log = log or (lambda m: print(f"[devenv gcs] {m}", flush=True))

    def start(self, timeout: float = 60.0) -> FakeGcsServer:
        binary = build.build_component(build.FAKE_GCS_SERVER, log=self.log) / "fake-gcs-server"
        args = [
            str(binary),
            "-scheme=http",
            "-host=127.0.0.1",
            f"-port={self.port}",
            "-backend=memory",
            f"-public-host=127.0.0.1:{self.port}",
            f"-external-url={self.endpoint}",
            "-log-level=warn",
        ]

        def bucket_created() -> bool:
            request = urllib.request.Request(
                f"{self.endpoint}/storage/v1/b?project=kubetune",
                data=json.dumps({"name": BUCKET}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=2) as r:
                return bool(r.status == 200)

        seconds = self._run_until_ready(
            "fake-gcs-server", args, bucket_created, f"bucket {BUCKET} is created", timeout
        )
        self.log(f"fake-gcs-server ready on {self.endpoint} in {seconds:.1f}s")
        return self

    def env(self) -> dict[str, str]:
        """What gcsfs reads: the emulator's address (no credentials: it accepts anyone)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}


class AzuriteServer(LocalServer):
    """Azurite's Blob service with one account whose key is made here."""

    scheme = "az"

    def __init__(self, *, workdir: Path | None = None, log: Log | None = None) -> None:
        super().__init__(workdir, "kubetune-azurite-")
        self.port = free_port()
        self.account = "kubetune"
        self.key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.endpoint = f"http://127.0.0.1:{self.port}/{self.account}"
        self.uri = f"az://{BUCKET}"
        self.log = log or (lambda m: print(f"[devenv azurite] {m}", flush=True))

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.endpoint};"
        )

    def start(self, timeout: float = 60.0) -> AzuriteServer:
        binary = build.build_component(build.AZURITE, log=self.log) / "azurite-blob"
        args = [
            str(binary),
            "--blobHost=127.0.0.1",
            f"--blobPort={self.port}",
            f"--location={self.workdir / 'data'}",
            f"--debug={self.workdir / 'debug.log'}",
            # The SDK in the image may speak a newer service version than Azurite knows.
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
        ]

        def container_created() -> bool:
            from azure.storage.blob import BlobServiceClient

            service = BlobServiceClient.from_connection_string(self.connection_string)
            if not service.get_container_client(BUCKET).exists():
                service.create_container(BUCKET)
            return True

        env = {**os.environ, "AZURITE_ACCOUNTS": f"{self.account}:{self.key}"}
        seconds = self._run_until_ready(
            "azurite", args, container_created, f"container {BUCKET} exists", timeout, env
        )
        self.log(f"Azurite ready on {self.endpoint} in {seconds:.1f}s")
        return self

    def env(self) -> dict[str, str]:
        """What adlfs reads: the account's connection string (a Secret's key in a pod)."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}
