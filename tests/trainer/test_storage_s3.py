"""Storage against the real S3 server on loopback (SeaweedFS), with the code users run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.s3 import S3Server
from kubetune_trainer import storage
from kubetune_trainer.builtin import materialize
from kubetune_trainer.errors import InfrastructureError, InvalidConfigError
from kubetune_trainer.run import RunOptions, train
from kubetune_trainer.sources import resolve_model
from tests.trainer.helpers import CHAT_ROWS, make_config, write_jsonl


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Credentials in the environment (as ``kubetune run`` gets them); a fresh prefix."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    yield f"s3://{s3.bucket}/{uuid.uuid4().hex}"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_directory_round_trip(s3_env: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "nested" / "deeper").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "nested" / "b.bin").write_bytes(bytes(range(256)) * 100)
    (source / "nested" / "deeper" / "c.json").write_text("{}")
    written = storage.upload_dir(source, s3_env)
    assert sorted(written) == sorted(f"{s3_env}/{name}" for name in tree(source))
    assert storage.list_names(s3_env) == ["a.txt", "nested"]
    copy = storage.download_dir(s3_env, tmp_path / "copy")
    assert tree(copy) == tree(source)

    storage.write_bytes(f"{s3_env}/x/manifest.json", b'{"ok": true}')
    assert json.loads(storage.read_bytes(f"{s3_env}/x/manifest.json")) == {"ok": True}
    storage.remove_tree(f"{s3_env}/nested")
    assert not storage.exists(f"{s3_env}/nested/b.bin")
    assert storage.exists(f"{s3_env}/a.txt")


def test_credentials_from_mounted_secret_files(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As in a trainer pod: the Secret's keys are files, the environment holds only where
    they are (``KUBETUNE_CREDENTIALS_<n>``), and the process environment still wins."""
    secret = tmp_path / "s3-credentials"
    secret.mkdir()
    for key, value in s3.env().items():
        monkeypatch.delenv(key, raising=False)
        (secret / key).write_text(value + "\n")  # --from-file keeps a trailing newline
    monkeypatch.setenv("KUBETUNE_CREDENTIALS_0", str(secret))
    prefix = f"s3://{s3.bucket}/{uuid.uuid4().hex}"
    storage.write_bytes(f"{prefix}/x.txt", b"from files")
    assert storage.read_bytes(f"{prefix}/x.txt") == b"from files"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises((InvalidConfigError, InfrastructureError)):
        storage.read_bytes(f"{prefix}/x.txt")


def test_missing_object_and_bad_credentials_fail_at_once(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidConfigError, match="does not exist or is not readable"):
        storage.read_bytes(f"{s3_env}/absent.jsonl")
    storage.write_bytes(f"{s3_env}/present.txt", b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises((InvalidConfigError, InfrastructureError)):
        storage.read_bytes(f"{s3_env}/present.txt")


def test_transient_errors_are_retried_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "BASE_DELAY_SECONDS", 0.001)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return "done"

    assert storage.with_retries("flaky", flaky) == "done" and len(calls) == 3

    def down() -> None:
        raise TimeoutError("timed out")

    with pytest.raises(InfrastructureError, match=f"after {storage.ATTEMPTS} attempts"):
        storage.with_retries("down", down)

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("no such key")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        storage.with_retries("missing", missing)
    assert len(calls) == 1


def test_model_from_s3_is_downloaded_once_into_the_cache(s3_env: str) -> None:
    builtin = materialize("tiny-llama")
    storage.upload_dir(builtin, f"{s3_env}/model")
    local = resolve_model(f"{s3_env}/model")
    assert tree(local) == tree(builtin)
    storage.remove_tree(f"{s3_env}/model")  # a second resolve must not need the store
    assert resolve_model(f"{s3_env}/model") == local


@pytest.mark.trainer
def test_training_reads_data_from_and_writes_results_to_s3(
    s3: S3Server, s3_env: str, tmp_path: Path
) -> None:
    storage.upload_file(write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS), f"{s3_env}/data.jsonl")
    config = make_config(
        tmp_path,
        dataset={"train": {"uri": f"{s3_env}/data.jsonl"}},
        output={"uri": f"{s3_env}/out"},
        checkpoints={"intervalSteps": 1, "keep": 1},
    )
    summary = train(config, RunOptions(work_dir=tmp_path / "work", print_logs=False))
    assert summary.outcome == "Succeeded", summary.message
    assert summary.result["manifestUri"] == f"{s3_env}/out/manifest.json"
    manifest = json.loads(storage.read_bytes(f"{s3_env}/out/manifest.json"))
    assert manifest["data"]["files"][0]["uri"] == f"{s3_env}/data.jsonl"
    assert all(storage.exists(uri) for uri in manifest["files"])
    assert f"{s3_env}/out/adapter_model.safetensors" in manifest["files"]
    # keep: 1 -> only the newest complete checkpoint's objects survive, marker included.
    prefix = f"{s3_env}/out/checkpoints/"[len(f"s3://{s3.bucket}/") :]
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    keys = {item["Key"][len(prefix) :] for item in listing["Contents"]}
    assert {key.split("/")[0] for key in keys} == {"step-2"}
    assert "step-2/COMPLETE" in keys
    assert [c["step"] for c in summary.checkpoints] == [2]
