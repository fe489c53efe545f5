"""pytest plugin: experiment-tracking servers.

``mlflow_server`` (session): a started :class:`devenv.mlflow_server.MLflowServer` (PyPI's
``mlflow``, SQLite backend) on 127.0.0.1, with ``url``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.mlflow_server import MLflowServer


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MLflowServer]:
    with MLflowServer() as server:
        yield server
