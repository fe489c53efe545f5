"""pytest plugin: a real S3 server (SeaweedFS) on loopback.

``s3`` (session): a started :class:`devenv.s3.S3Server` with ``endpoint``,
``access_key``, ``secret_key``, ``region``, ``bucket`` (``kubetune``, created at start),
``client()`` (boto3) and ``env()`` (AWS_* variables for SDKs and subprocesses). Tests
using it are marked ``s3`` automatically.

``quickstart_data`` (session): the quickstart dataset (``examples/quickstart-data/``)
uploaded to ``s3://kubetune/quickstart-data/``, where ``examples/quickstart-cluster.yaml``
reads it; its URI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.dev import BUCKET, DATA_PREFIX, EXAMPLES, upload_dir
from devenv.s3 import S3Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "s3" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with S3Server(buckets=("kubetune", "kubetune-output")) as server:
        yield server


@pytest.fixture(scope="session")
def quickstart_data(s3: S3Server) -> str:
    upload_dir(s3, EXAMPLES / "quickstart-data", BUCKET, DATA_PREFIX)
    return f"s3://{BUCKET}/{DATA_PREFIX}"
