"""pytest plugin: Google Cloud Storage and Azure Blob Storage emulators on loopback.

``gcs`` (session): a started :class:`devenv.emulators.FakeGcsServer` (fake-gcs-server).
``azurite`` (session): a started :class:`devenv.emulators.AzuriteServer` (Azurite).

Both have ``uri`` (their bucket, ``gs://kubetune`` / ``az://kubetune``) and ``env()`` (the
variables the trainer's storage reads). A server that cannot be built or started fails
the tests that need it, with its log, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devenv.emulators import AzuriteServer, FakeGcsServer


@pytest.fixture(scope="session")
def gcs() -> Iterator[FakeGcsServer]:
    with FakeGcsServer() as server:
        yield server


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    with AzuriteServer() as server:
        yield server
