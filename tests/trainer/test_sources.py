"""Model sources: hf:// from the offline cache, pvc://, file://, builtin://, unknown schemes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kubetune_trainer import storage
from kubetune_trainer.builtin import materialize
from kubetune_trainer.errors import InfrastructureError, InvalidConfigError, InvalidModelError
from kubetune_trainer.sources import resolve_model


def test_builtin_model_is_deterministic_and_cached() -> None:
    first = materialize("tiny-llama")
    assert resolve_model("builtin://tiny-llama") == first
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()
    classifier = resolve_model("builtin://tiny-llama", classifier=True)
    assert classifier != first and (classifier / "config.json").is_file()
    with pytest.raises(InvalidModelError, match="builtin models are: tiny-llama"):
        resolve_model("builtin://huge-llama")


def test_hf_model_resolves_offline_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache layout the hub client writes: refs/<revision> -> snapshots/<commit>/files."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--acme--tiny"
    shutil.copytree(materialize("tiny-llama"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_model("hf://acme/tiny") == repo / "snapshots" / commit
    assert resolve_model("hf://acme/tiny@main") == repo / "snapshots" / commit
    with pytest.raises(InfrastructureError, match="not in the local cache"):
        resolve_model("hf://acme/absent")


def test_pvc_and_file_models_are_used_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBETUNE_PVC_ROOT", str(tmp_path / "pvc"))
    target = tmp_path / "pvc" / "models-claim" / "llama" / "v1"
    shutil.copytree(materialize("tiny-llama"), target)
    assert resolve_model("pvc://models-claim/llama/v1") == target
    assert resolve_model(f"file://{target}") == target
    with pytest.raises(InvalidModelError, match=r"no config\.json"):
        resolve_model(f"file://{tmp_path}")


def test_stores_without_their_client_package_are_refused_clearly() -> None:
    for uri, package in (("gs://bucket/model", "gcsfs"), ("az://container/model", "adlfs")):
        try:
            __import__(package)
        except ImportError:
            with pytest.raises(InvalidConfigError, match=f"needs the {package} package"):
                storage.filesystem(uri)


def test_file_uris_relative_and_absolute() -> None:
    assert storage.local_path("file:///abs/path") == Path("/abs/path")
    assert storage.local_path("file://rel/path") == Path("rel/path")
    assert storage.local_path("file:./rel") == Path("./rel")
    assert storage.local_path("plain/path") == Path("plain/path")
