"""gs:// and az:// against their emulators (fake-gcs-server, Azurite) on loopback, through
the clients the image carries (gcsfs, adlfs) — the same way SeaweedFS serves s3://.

Each store gets the whole path a job takes: the base model and the data read from the
store, checkpoints and the adapter written to it with ``manifest.json`` last, and a run
stopped by SIGTERM resuming from the checkpoint it left there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devenv.emulators import AzuriteServer, FakeGcsServer
from kubetune_contract import exit_codes
from kubetune_trainer import storage
from kubetune_trainer.builtin import materialize
from kubetune_trainer.checkpoints import MARKER
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.run import RunOptions, train
from kubetune_trainer.sources import resolve_model
from tests.trainer.helpers import CHAT_ROWS, SignalAt, make_config, write_jsonl

Store = FakeGcsServer | AzuriteServer


@pytest.fixture(params=["gcs", "azurite"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh prefix in the emulator's bucket, its settings in the environment (where
    the operator puts a credentials Secret's keys)."""
    server: Store = request.getfixturevalue(request.param)
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    yield f"{server.uri}/{uuid.uuid4().hex}"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _modified(uri: str) -> datetime:
    """The object's modification time, as the store reports it."""
    fs, path = storage.filesystem(uri)
    info: dict[str, Any] = fs.info(path)
    value = info.get("updated") or info.get("last_modified")
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_directory_round_trip_and_a_missing_object(store: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "nested" / "b.bin").write_bytes(bytes(range(256)) * 100)
    written = storage.upload_dir(source, store)
    assert sorted(written) == sorted(f"{store}/{name}" for name in tree(source))
    assert storage.list_names(store) == ["a.txt", "nested"]
    assert tree(storage.download_dir(store, tmp_path / "copy")) == tree(source)
    storage.remove_tree(f"{store}/nested")
    assert not storage.exists(f"{store}/nested/b.bin") and storage.exists(f"{store}/a.txt")
    with pytest.raises(InvalidConfigError, match="does not exist or is not readable"):
        storage.read_bytes(f"{store}/absent.jsonl")


@pytest.mark.trainer
def test_a_job_reads_model_and_data_writes_checkpoints_and_adapter_and_resumes(
    store: str, tmp_path: Path
) -> None:
    storage.upload_dir(materialize("tiny-llama"), f"{store}/model")
    storage.upload_file(write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS), f"{store}/data.jsonl")
    assert tree(resolve_model(f"{store}/model")) == tree(materialize("tiny-llama"))
    output = f"{store}/out"

    def config(max_steps: int) -> Any:
        return make_config(
            tmp_path,
            model={"uri": f"{store}/model"},
            dataset={"train": {"uri": f"{store}/data.jsonl"}},
            output={"uri": output},
            training={"maxSteps": max_steps},
            checkpoints={"intervalSteps": 1000, "keep": 2},
        )

    interrupted = train(
        config(100_000),
        RunOptions(work_dir=tmp_path / "work1", print_logs=False, callbacks=[SignalAt(1)]),
    )
    assert (interrupted.outcome, interrupted.exitCode) == ("Interrupted", exit_codes.INTERRUPTED)
    [checkpoint] = interrupted.checkpoints
    step = checkpoint["step"]
    assert checkpoint["uri"] == f"{output}/checkpoints/step-{step}"
    assert storage.exists(f"{checkpoint['uri']}/{MARKER}")
    assert not storage.exists(f"{output}/manifest.json")

    resumed = train(config(step + 2), RunOptions(work_dir=tmp_path / "work2", print_logs=False))
    assert (resumed.outcome, resumed.step) == ("Succeeded", step + 2), resumed.message
    assert resumed.resumes == 1, "the second run resumed from the checkpoint in the store"
    logged = [
        json.loads(line) for line in (tmp_path / "work2" / "metrics.jsonl").read_text().splitlines()
    ]
    # The whole run's history: the first attempt's steps (from its checkpoint), then these.
    assert [r["step"] for r in logged if "loss" in r] == list(range(1, step + 3))

    manifest_uri = resumed.result["manifestUri"]
    assert manifest_uri == f"{output}/manifest.json"
    manifest = json.loads(storage.read_bytes(manifest_uri))
    assert manifest["data"]["files"][0]["uri"] == f"{store}/data.jsonl"
    assert f"{output}/adapter_model.safetensors" in manifest["files"]
    assert all(storage.exists(uri) for uri in manifest["files"])
    # Written last: nothing the manifest lists is newer than the manifest itself.
    assert max(_modified(uri) for uri in manifest["files"]) <= _modified(manifest_uri)
