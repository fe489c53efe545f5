"""promtool lints exposition text, and a real Prometheus scrapes a target."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devenv.prometheus import PrometheusServer, check_metrics

GOOD = """\
# HELP kubetune_jobs_total FineTuneJobs reconciled.
# TYPE kubetune_jobs_total counter
kubetune_jobs_total{state="succeeded"} 3
# HELP kubetune_train_loss Training loss of the latest step.
# TYPE kubetune_train_loss gauge
kubetune_train_loss 0.42
"""

BAD_COUNTER_NAME = """\
# HELP kubetune_jobs FineTuneJobs reconciled.
# TYPE kubetune_jobs counter
kubetune_jobs 3
"""


def test_promtool_accepts_good_metrics(promtool: Path) -> None:
    out = subprocess.run(
        [str(promtool), "check", "metrics"], input=GOOD, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_flags_a_counter_without_total() -> None:
    out = check_metrics(BAD_COUNTER_NAME)
    assert out.returncode != 0
    assert "_total" in out.stdout + out.stderr


def test_promtool_rejects_broken_exposition() -> None:
    assert check_metrics("kubetune_x{ 1\n").returncode != 0


@pytest.fixture
def metrics_target() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = GOOD.encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_scrapes_a_target(
    prometheus_server: Callable[..., PrometheusServer], metrics_target: str
) -> None:
    prom = prometheus_server(metrics_target, job="kubetune-test")
    targets = prom.wait_for_target()
    assert [t["scrapeUrl"] for t in targets] == [f"http://{metrics_target}/metrics"]
    series = prom.wait_for_series('kubetune_jobs_total{job="kubetune-test"}')
    assert series[0]["metric"]["state"] == "succeeded"
    assert series[0]["value"][1] == "3"
    assert prom.query("kubetune_train_loss")[0]["value"][1] == "0.42"
