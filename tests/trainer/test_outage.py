"""The output store goes down mid-run: the real S3 server (SeaweedFS) is stopped and restarted.

Stopping ``weed`` keeps its data folder, so a restart on the same ports brings back the
same store, as an S3 endpoint that comes back after a network partition does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from devenv.s3 import S3Server
from kubetune_contract import exit_codes
from kubetune_trainer import storage, uploads
from kubetune_trainer.checkpoints import MARKER, CheckpointStore
from kubetune_trainer.run import RunOptions, execute, train
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


@pytest.fixture
def output(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh prefix, fast retries (2 tries, 10 ms backoff); the server is up afterwards."""
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(storage, "ATTEMPTS", 2)
    monkeypatch.setattr(storage, "BASE_DELAY_SECONDS", 0.01)
    yield f"s3://{s3.bucket}/{uuid.uuid4().hex}/out"
    if s3.proc is None or s3.proc.popen.poll() is not None:
        s3.start()


class Outage(TrainerCallback):
    """Stops the S3 server at the end of step ``down`` (before that step's checkpoint is
    saved); starts it again at the end of step ``up`` (if any)."""

    def __init__(self, s3: S3Server, down: int, up: int | None = None) -> None:
        self.s3, self.down, self.up = s3, down, up

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.global_step == self.down and self.s3.proc is not None:
            self.s3.proc.stop()
        if state.global_step == self.up:
            self.s3.start()


def test_training_goes_on_through_an_outage_and_uploads_after_it(
    s3: S3Server, output: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Checkpoints at every step; those of steps 2 and 3 meet a store that is down (and a
    # just restarted SeaweedFS may still refuse a few requests).
    config = make_config(
        tmp_path,
        output={"uri": output},
        training={"maxSteps": 8},
        checkpoints={"intervalSteps": 1, "keep": 2},
    )
    with caplog.at_level(logging.WARNING, logger=uploads.__name__):
        summary = train(
            config,
            RunOptions(work_dir=tmp_path / "work", print_logs=False, callbacks=[Outage(s3, 2, 4)]),
        )
    assert (summary.outcome, summary.step) == ("Succeeded", 8), summary.message
    failed = [r.getMessage() for r in caplog.records if "not uploaded" in r.getMessage()]
    assert failed and all("training goes on" in message for message in failed)
    assert {2, 3} <= {int(m.split()[1]) for m in failed} <= {2, 3, 4, 5, 6}
    # After the outage: the newest two, whole; nothing from the outage left half-written.
    assert [c["step"] for c in summary.checkpoints] == [7, 8]
    store = CheckpointStore(output, keep=2)
    assert [c.step for c in store.complete()] == [7, 8]
    prefix = store.root[len(f"s3://{s3.bucket}/") :] + "/"
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]
    assert {item["Key"][len(prefix) :].split("/")[0] for item in listing} == {"step-7", "step-8"}
    assert storage.exists(f"{output}/manifest.json")


def test_a_store_down_past_the_bound_fails_with_the_retriable_code(
    s3: S3Server, output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(uploads.OUTAGE_ENV, "4")
    config = make_config(
        tmp_path,
        output={"uri": output},
        training={"maxSteps": 100_000},
        checkpoints={"intervalSteps": 1, "keep": 2},
    )
    seen: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
        ) -> None:
            seen.append(state.global_step)

    summary = execute(
        lambda: config,
        RunOptions(
            work_dir=tmp_path / "work", print_logs=False, callbacks=[Outage(s3, 2), Steps()]
        ),
    )
    assert (summary.exitCode, summary.reason) == (exit_codes.RETRIABLE, "InfrastructureError")
    assert (
        "unreachable for" in summary.message
        and "KUBETUNE_STORAGE_OUTAGE_SECONDS" in summary.message
    )
    assert max(seen) > 3, "training went on while the store was down"
    s3.start()
    monkeypatch.setattr(storage, "ATTEMPTS", 10)  # a just restarted SeaweedFS needs a moment
    monkeypatch.setattr(storage, "BASE_DELAY_SECONDS", 0.2)
    # What the store holds is whole: the checkpoints from before the outage, markers and all.
    store = CheckpointStore(output, keep=2)
    assert [c.step for c in store.complete()] == [1]
    assert all(storage.exists(f"{c.uri}/{MARKER}") for c in store.complete())


def test_an_unreachable_endpoint_is_retried_not_reported_as_a_bug() -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    assert storage._transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert storage._transient(ConnectionClosedError(endpoint_url="http://127.0.0.1:1"))
    assert not storage._transient(FileNotFoundError("no such key"))
