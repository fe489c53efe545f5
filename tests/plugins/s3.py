"""pytest plugin: a real S3 server (SeaweedFS) on loopback.

``s3`` (session): a started :class:`devenv.s3.S3Server` with ``endpoint``,
``access_key``, ``secret_key``, ``region``, ``bucket`` (``kubetune``, created at start),
``client()`` (boto3) and ``env()`` (AWS_* variables for SDKs and subprocesses). Tests
using it are marked ``s3`` automatically.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.s3 import S3Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "s3" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with S3Server(buckets=("kubetune", "kubetune-output")) as server:
        yield server
