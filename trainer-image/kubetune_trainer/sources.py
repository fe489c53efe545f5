"""Model sources: turn ``model`` (or ``reward.model``) into a local folder.

* ``builtin://NAME``: built on the fly (:mod:`kubetune_trainer.builtin`).
* ``hf://org/name[@revision]``: the Hugging Face hub client, given ``HF_TOKEN`` from the
  mounted credentials (:mod:`kubetune_trainer.credentials`); ``HF_HOME`` from the
  environment; with ``HF_HUB_OFFLINE=1`` it serves from the cache.
* ``s3://``, ``gs://``, ``az://``: downloaded once into ``$KUBETUNE_CACHE_DIR/models/``;
  each file's size is checked against the listing and the folder is renamed into place
  only when complete, so a pod killed mid-download never leaves a half model behind.
* ``pvc://``, ``file://`` and plain paths: used where they are.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from kubetune_trainer import builtin, credentials, storage
from kubetune_trainer.errors import InfrastructureError, InvalidModelError


def resolve_model(uri: str, revision: str | None = None, *, classifier: bool = False) -> Path:
    """A local folder with the model's ``config.json`` (and weights, and tokenizer)."""
    kind = storage.scheme(uri)
    if kind == "builtin":
        return builtin.materialize(uri[len("builtin://") :], sequence_classification=classifier)
    if kind == "hf":
        folder = _from_hub(uri, revision)
    elif storage.is_remote(uri):
        folder = _from_store(uri)
    else:
        folder = storage.local_path(uri)
    if not (folder / "config.json").is_file():
        hint = ""
        if (folder / "adapter_config.json").is_file():
            hint = (
                " (it holds an adapter: use the merged/ folder of a job run with "
                "output.merge: true)"
            )
        raise InvalidModelError(
            f"{uri}: no config.json found in {folder}; not a model folder{hint}"
        )
    return folder


def _from_hub(uri: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, _, pinned = uri[len("hf://") :].partition("@")
    try:
        return Path(
            snapshot_download(repo_id=repo, revision=revision or pinned or None, token=hub_token())
        )
    except (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError) as exc:
        raise InvalidModelError(f"{uri}: {exc}") from exc
    except LocalEntryNotFoundError as exc:
        raise InfrastructureError(
            f"{uri}: not in the local cache and the hub is unreachable"
        ) from exc


def hub_token() -> str | None:
    """The Hub token of the job (``None``: the hub client's own lookup, e.g. a cached login)."""
    return credentials.first("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def _from_store(uri: str) -> Path:
    target = builtin.cache_root() / "models" / hashlib.sha256(uri.encode()).hexdigest()[:24]
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        storage.download_dir(uri, staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
