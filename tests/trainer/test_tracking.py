"""``spec.tracking`` against each backend's own code: a real MLflow tracking server,
TensorBoard's own event reader, W&B's offline run files.

Each test trains the tiny model for a few steps with the backend the spec names, then
reads back what the backend received with that backend's own client, and compares it
with the trainer's own record of the run (``metrics.jsonl``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.mlflow_server import MLflowServer
from devenv.s3 import S3Server
from kubetune_contract import exit_codes
from kubetune_trainer import storage
from kubetune_trainer.run import RunOptions, execute, train
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer

STEPS = 3


@pytest.fixture(autouse=True)
def environment() -> Iterator[None]:
    """The trainer sets the backends' variables in its own process (a pod has one run);
    here each test gets the environment back as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _run(tmp_path: Path, tracking: dict[str, Any]) -> list[dict[str, Any]]:
    """Train with ``tracking``; return the logged training records (``metrics.jsonl``)."""
    config = make_config(tmp_path, training={"maxSteps": STEPS}, tracking=tracking)
    summary = train(config, RunOptions(work_dir=tmp_path / "work", print_logs=False))
    assert summary.outcome == "Succeeded", summary.message
    lines = (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r]


def test_mlflow_server_receives_the_runs_parameters_and_metrics(
    mlflow_server: MLflowServer, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    logged = _run(
        tmp_path, {"backend": "mlflow", "uri": mlflow_server.url, "project": "kubetune-test"}
    )
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.get_experiment_by_name("kubetune-test")
    assert experiment is not None, "the run went to the experiment named by tracking.project"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert float(params["learning_rate"]) == 1e-3
    assert int(params["max_steps"]) == STEPS
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [
        (r["step"], pytest.approx(r["loss"])) for r in logged
    ]


def _tensorboard_losses(folder: Path) -> list[tuple[int, float]]:
    """``train/loss`` as TensorBoard itself reads it from the event files under ``folder``."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(folder))
    multiplexer.Reload()
    runs = [r for r, tags in multiplexer.Runs().items() if "train/loss" in tags["scalars"]]
    assert len(runs) == 1, multiplexer.Runs()
    return [(e.step, e.value) for e in multiplexer.Scalars(runs[0], "train/loss")]


def test_tensorboard_event_files_read_back_with_tensorboards_reader(tmp_path: Path) -> None:
    logs = tmp_path / "tensorboard"
    logged = _run(tmp_path, {"backend": "tensorboard", "uri": f"file://{logs}"})
    assert _tensorboard_losses(logs) == [(r["step"], pytest.approx(r["loss"])) for r in logged]


def test_tensorboard_logs_reach_an_object_store_uri(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    uri = f"s3://{s3.bucket}/{tmp_path.name}/tensorboard"
    logged = _run(tmp_path, {"backend": "tensorboard", "uri": uri})
    copy = storage.download_dir(uri, tmp_path / "downloaded")
    assert _tensorboard_losses(copy) == [(r["step"], pytest.approx(r["loss"])) for r in logged]


def _wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B run file, decoded with W&B's own protobuf schema.

    W&B 0.31 reads these files only in its Go core (``wandb sync``), so the framing is
    undone here: a 7-byte file header, then LevelDB's log format (32 KiB blocks, each
    record chunk behind a 7-byte header of CRC, length and type: full, first, middle,
    last), which is what W&B's writer uses.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "a W&B run file"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        length, kind = (
            int.from_bytes(data[position + 4 : position + 6], "little"),
            data[position + 6],
        )
        if left < 7 or (length, kind) == (0, 0):  # the rest of a block is padding
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_writes_its_run_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a user puts in spec.env for a cluster without W&B access; no API key needed.
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    logged = _run(tmp_path, {"backend": "wandb", "project": "kubetune-test"})
    import wandb

    # transformers leaves the run open for the process's exit to finish (a pod's trainer
    # exits after training); this process goes on, so it does what exit does: finish the
    # run and stop W&B's service. finish() alone returns before the service has flushed
    # the run file (under load the file held no whole record yet); teardown waits for it.
    wandb.finish()
    wandb.teardown()
    (run_dir,) = (tmp_path / "wandb-dir" / "wandb").glob("offline-run-*")
    (run_file,) = run_dir.glob("run-*.wandb")  # what `wandb sync` uploads later
    records = list(_wandb_records(run_file))
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[-1] == "exit", "the run was finished"
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "kubetune-test"
    config = {
        item.key: json.loads(item.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for item in r.config.update
    }
    assert config["learning_rate"] == 1e-3 and config["max_steps"] == STEPS
    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in h}
        for h in (r.history.item for r in records if r.WhichOneof("record_type") == "history")
    ]
    losses = [(h["train/global_step"], h["train/loss"]) for h in history if "train/loss" in h]
    assert losses == [(r["step"], pytest.approx(r["loss"])) for r in logged]
    assert not any(
        "WANDB_API_KEY" in r.SerializeToString().decode(errors="replace") for r in records
    )


def test_a_backend_missing_from_the_image_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Images built without a backend's client (a slimmed custom image) refuse clearly."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    config = make_config(tmp_path, tracking={"backend": "wandb", "project": "p"})
    summary = execute(lambda: config, RunOptions(work_dir=tmp_path / "work"))
    assert (summary.exitCode, summary.reason) == (exit_codes.INVALID_INPUT, "InvalidConfig")
    assert "tracking.backend wandb needs the wandb package" in summary.message
    assert not (tmp_path / "work").exists()
