"""Prometheus and promtool for tests: lint exposition text, scrape real targets.

Why a real Prometheus: the operator's and the trainer's metrics are only useful if
Prometheus can scrape and query them, and ``promtool check metrics`` is the reference
linter for the exposition format (names, HELP/TYPE, units). Both come from Debian's
``prometheus`` package (``.ci/install-system.sh`` installs it); they are found on PATH
or through ``KUBETUNE_PROMETHEUS`` / ``KUBETUNE_PROMTOOL``.

:class:`PrometheusServer` runs ``prometheus`` on a free loopback port with a scrape
config for the given targets and a short scrape interval, waits for ``/-/ready``, and
offers :meth:`~PrometheusServer.query` (instant queries over the HTTP API) and
:meth:`~PrometheusServer.wait_for_target` (first successful scrape).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from devenv.process import ComponentError, LocalServer, Process, free_port, wait_for

Log = Callable[[str], None]


def _find(name: str, env_var: str) -> Path:
    override = os.environ.get(env_var)
    found = override or shutil.which(name)
    if not found or not Path(found).is_file():
        raise ComponentError(
            f"{name!r} not found (set {env_var} or install Debian's 'prometheus' package: "
            "sudo .ci/install-system.sh)"
        )
    return Path(found)


def promtool_path() -> Path:
    """Path of ``promtool`` (``KUBETUNE_PROMTOOL`` overrides PATH lookup)."""
    return _find("promtool", "KUBETUNE_PROMTOOL")


def prometheus_path() -> Path:
    """Path of the ``prometheus`` server (``KUBETUNE_PROMETHEUS`` overrides)."""
    return _find("prometheus", "KUBETUNE_PROMETHEUS")


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """Run ``promtool check metrics`` on exposition text; the caller checks returncode.

    promtool exits non-zero for format errors and prints lint problems (e.g. a counter
    without ``_total``) on stdout/stderr.
    """
    return subprocess.run(
        [str(promtool_path()), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


class PrometheusServer(LocalServer):
    """A Prometheus server on 127.0.0.1 scraping ``targets`` (``host:port`` strings)."""

    def __init__(
        self,
        targets: Sequence[str],
        *,
        metrics_path: str = "/metrics",
        scrape_interval: str = "1s",
        job: str = "target",
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        rule_files: Sequence[Path] = (),
        workdir: Path | None = None,
        log: Log | None = None,
    ) -> None:
        """Scrapes ``targets`` as job ``job``, plus any further ``scrape_configs`` (e.g.
        Kubernetes service discovery); loads and evaluates ``rule_files``."""
        self.targets = list(targets)
        self.scrape_configs = [dict(c) for c in scrape_configs]
        self.rule_files = list(rule_files)
        self.metrics_path = metrics_path
        self.scrape_interval = scrape_interval
        self.job = job
        super().__init__(workdir, "kubetune-prom-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or (lambda m: print(f"[devenv prometheus] {m}", flush=True))

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Write the config, start the server, wait until ``/-/ready`` answers 200."""
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(f) for f in self.rule_files],
            "scrape_configs": [
                *(
                    [
                        {
                            "job_name": self.job,
                            "metrics_path": self.metrics_path,
                            "static_configs": [{"targets": self.targets}],
                        }
                    ]
                    if self.targets
                    else []
                ),
                *self.scrape_configs,
            ],
        }
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config, sort_keys=False))
        check = subprocess.run(
            [str(promtool_path()), "check", "config", str(cfg)],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise ComponentError(f"invalid Prometheus config {cfg}:\n{check.stdout}{check.stderr}")
        self.proc = Process(
            "prometheus",
            [
                str(prometheus_path()),
                f"--config.file={cfg}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.workdir / "prometheus.log",
            cwd=self.workdir,
        )

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)

        try:
            wait_for(self.proc, ready, what="GET /-/ready returns 200", timeout=timeout)
        except BaseException:
            self.proc.stop()
            raise
        self.log(f"Prometheus ready on {self.url}, scraping {self.targets}")
        return self

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; return ``data`` or raise with Prometheus' error."""
        qs = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{qs}", timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus API {path} failed: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the ``result`` vector (each ``metric`` and ``value``)."""
        data = self.api("query", query=promql)
        return list(data["result"])

    def wait_for_target(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every target has been scraped successfully (health ``up``)."""
        assert self.proc is not None, "start() the server first"

        def all_up() -> list[dict[str, Any]] | None:
            active = self.api("targets")["activeTargets"]
            if active and all(t["health"] == "up" for t in active):
                return list(active)
            return None

        result: list[dict[str, Any]] = wait_for(
            self.proc,
            all_up,
            what=f"targets {self.targets} are up",
            timeout=timeout,
            interval=0.25,
        )
        return result

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until an instant query returns at least one series; return it."""
        assert self.proc is not None, "start() the server first"
        result: list[dict[str, Any]] = wait_for(
            self.proc,
            lambda: self.query(promql) or None,
            what=f"{promql!r} has data",
            timeout=timeout,
            interval=0.25,
        )
        return result
