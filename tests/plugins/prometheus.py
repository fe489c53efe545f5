"""pytest plugin: promtool and Prometheus servers on loopback.

``promtool`` (session): path of Debian's ``promtool`` (a missing binary is an error that
says how to install it, not a skip).
``prometheus_server`` (function): factory ``prometheus_server("127.0.0.1:8000", ...)``
returning a started :class:`devenv.prometheus.PrometheusServer` scraping that
target (or list of targets); every server is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from devenv.prometheus import PrometheusServer, promtool_path


@pytest.fixture(scope="session")
def promtool() -> Path:
    return promtool_path()


@pytest.fixture
def prometheus_server() -> Iterator[Callable[..., PrometheusServer]]:
    servers: list[PrometheusServer] = []

    def start(target: str | Sequence[str], **kwargs: Any) -> PrometheusServer:
        targets = [target] if isinstance(target, str) else list(target)
        server = PrometheusServer(targets, **kwargs)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
