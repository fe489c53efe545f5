"""A real MLflow tracking server on loopback, with a SQLite backend store.

Why the real server: ``spec.tracking.backend: mlflow`` is only as good as what an MLflow
server receives from the trainer's client (transformers' MLflow callback on
``mlflow-skinny``). The server is PyPI's ``mlflow`` in a virtual environment of its own
(:data:`devenv.build.MLFLOW`), so its dependencies never touch the trainer's tested stack;
runs, parameters and metrics land in a SQLite file and artifacts in a folder.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path

from devenv import build
from devenv.process import LocalServer, free_port

Log = Callable[[str], None]


class MLflowServer(LocalServer):
    """``mlflow server`` on ``host`` (127.0.0.1 by default) with SQLite and local artifacts."""

    def __init__(
        self, *, workdir: Path | None = None, host: str = "127.0.0.1", log: Log | None = None
    ) -> None:
        super().__init__(workdir, "kubetune-mlflow-")
        self.host = host
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or (lambda m: print(f"[devenv mlflow] {m}", flush=True))

    def start(self, timeout: float = 120.0) -> MLflowServer:
        """Build the server's environment if the cache lacks it, start, wait for /health."""
        binary = build.build_component(build.MLFLOW, log=self.log) / "mlflow"
        args = [
            str(binary),
            "server",
            f"--backend-store-uri=sqlite:///{self.workdir / 'mlflow.db'}",
            f"--artifacts-destination={self.workdir / 'artifacts'}",
            f"--host={self.host}",
            f"--port={self.port}",
            "--workers=1",
        ]

        def healthy() -> bool:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return bool(r.status == 200)

        seconds = self._run_until_ready("mlflow", args, healthy, "GET /health returns 200", timeout)
        self.log(f"MLflow ready on {self.url} in {seconds:.1f}s")
        return self
