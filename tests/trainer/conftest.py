"""Trainer tests run offline on the builtin tiny Llama, built once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def offline_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No hub, a private model cache, no metrics server, a writable termination path."""
    root = tmp_path_factory.mktemp("trainer-env")
    values = {
        "HF_HUB_OFFLINE": "1",
        "KUBETUNE_CACHE_DIR": os.environ.get("KUBETUNE_TEST_CACHE_DIR", str(root / "cache")),
        "KUBETUNE_METRICS_PORT": "0",
        "KUBETUNE_TERMINATION_PATH": str(root / "termination-log"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
