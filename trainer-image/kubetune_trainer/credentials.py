"""Credentials as files: the job's credential Secrets, mounted by the operator, read here.

The operator mounts each Secret a job names (``model.credentialsSecret``,
``output.credentialsSecret``, ...) as a read-only volume and tells the trainer where with
``KUBETUNE_CREDENTIALS_0``, ``KUBETUNE_CREDENTIALS_1``, ... (in the spec's order). Each
key of the Secret is a file named like the variable it stands for: ``HF_TOKEN``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS`` (the service-account JSON itself),
``AZURE_STORAGE_ACCOUNT_KEY``...

Why files and not environment variables: a variable is inherited by every child process
(torchrun's workers, data loader workers, anything a tokenizer spawns), appears in
``/proc/<pid>/environ`` and in crash reports and debug dumps, and a kubelet can't update
it when the Secret is rotated. The storage clients get the values passed explicitly
(:mod:`kubetune_trainer.storage`, :mod:`kubetune_trainer.sources`); only the tracking
clients (W&B, MLflow), which read their keys from nowhere but the environment, get them
set in the trainer's own process, never in the pod spec (:mod:`kubetune_trainer.tracking`).

A variable of the process wins over a file, as a container's ``env`` wins over
``envFrom``: ``kubetune run`` on a laptop, and workload identity, keep working unchanged.
Among files, a later directory wins.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubetune_contract.pod import CREDENTIALS_ENV_PREFIX


def directories() -> list[Path]:
    """The mounted credential folders, in the order the operator listed them."""
    found = []
    index = 0
    while (path := os.environ.get(f"{CREDENTIALS_ENV_PREFIX}{index}")) is not None:
        found.append(Path(path))
        index += 1
    return found


def path(name: str) -> Path | None:
    """The file holding credential ``name`` (the last folder that has one)."""
    for folder in reversed(directories()):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def value(name: str) -> str | None:
    """Credential ``name``: from the process environment, else from its file (trailing
    newline dropped: ``kubectl create secret --from-file`` keeps the file's)."""
    if name in os.environ:
        return os.environ[name]
    found = path(name)
    return found.read_text(encoding="utf-8").rstrip("\r\n") if found is not None else None


def first(*names: str) -> str | None:
    """The first of ``names`` that is set (e.g. ``AWS_ENDPOINT_URL_S3``, then the generic)."""
    for name in names:
        if (found := value(name)) is not None and found != "":
            return found
    return None
