"""A job stopped at any point and resumed publishes what it publishes uninterrupted.

Each interruption point is a way a pod ends early: SIGTERM (preemption, exit 5) or
SIGKILL (the grace period ran out, the node went away), the latter stood in for by
:class:`~tests.trainer.helpers.Killed`, after which nothing of that attempt runs. The
next attempt gets a fresh work folder, as a new pod does, and resumes from the store.
The checks (:mod:`tests.trainer.resume_checks`) compare what the store then holds with an
uninterrupted run's result: the whole history step for step, the final metrics,
``maxSteps`` steps, one result. Both for the local store and the real S3 server.

The job: 5 steps over 6 rows in batches of 2, so step 5 ends mid-epoch (where resuming
the final checkpoint used to train a 6th step); checkpoints at steps 2 and 4 and at the
end; evaluation at each epoch end (steps 3 and 5), so the final evaluation comes after
the last checkpoint and a resume from it has to evaluate its weights again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from devenv.s3 import S3Server
from kubetune_contract import exit_codes
from kubetune_trainer import storage
from kubetune_trainer.run import RunOptions, train
from tests.trainer.helpers import Killed, SignalAt, make_config
from tests.trainer.resume_checks import Published, assert_same_result, read_published

pytestmark = pytest.mark.trainer

STEPS = 5
JOB: dict[str, Any] = {
    "dataset": {"validationSplit": "0.25"},
    "training": {"maxSteps": STEPS},
    "checkpoints": {"intervalSteps": 2, "keep": 2},
}


class KillAt(TrainerCallback):
    """Kills the attempt at the end of ``step``, or right after its checkpoint is
    uploaded (``after_save``: this callback comes after the upload callback)."""

    def __init__(self, step: int, *, after_save: bool = False) -> None:
        self.step, self.after_save = step, after_save

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.global_step == self.step and not self.after_save:
            raise Killed

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.global_step == self.step and self.after_save:
            raise Killed


class KillAtTrainEnd(TrainerCallback):
    """Kills the attempt once training is over: the last checkpoint is in the store,
    nothing is published yet."""

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        raise Killed


def kill_during_adapter_upload(patch: pytest.MonkeyPatch) -> None:
    """The result folder's upload dies after its first file."""
    upload_dir = storage.upload_dir

    def dies(local: Path, uri: str) -> list[str]:
        if local.name != "final":
            return upload_dir(local, uri)
        first = sorted(p for p in local.iterdir() if p.is_file())[0]
        storage.upload_file(first, storage.join(uri, first.name))
        raise Killed

    patch.setattr(storage, "upload_dir", dies)


def kill_during_manifest_write(patch: pytest.MonkeyPatch) -> None:
    """Everything is uploaded; the manifest's write never completes (a PUT is atomic)."""
    write_bytes = storage.write_bytes

    def dies(uri: str, data: bytes) -> None:
        if uri.endswith("/manifest.json"):
            raise Killed
        write_bytes(uri, data)

    patch.setattr(storage, "write_bytes", dies)


@dataclass(frozen=True)
class Point:
    name: str
    resumed_at: int
    """The step the next attempt resumes at: the newest complete checkpoint's."""
    callbacks: Callable[[], list[TrainerCallback]] = list
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    by_signal: bool = False
    """The attempt ends with exit 5 (else it dies)."""


POINTS = [
    # The signal comes at the end of step 2 (3); the trainer saves after step 3, an epoch's
    # end (4, mid-epoch), and exits 5.
    Point("sigterm-at-an-epoch-end", 3, lambda: [SignalAt(2)], by_signal=True),
    Point("sigterm-mid-epoch", 4, lambda: [SignalAt(3)], by_signal=True),
    Point("killed-mid-run", 2, lambda: [KillAt(3)]),
    Point("killed-right-after-a-checkpoint", 4, lambda: [KillAt(4, after_save=True)]),
    Point("killed-after-the-last-checkpoint", STEPS, lambda: [KillAtTrainEnd()]),
    Point("killed-during-the-adapter-upload", STEPS, patch=kill_during_adapter_upload),
    Point("killed-during-the-manifest-write", STEPS, patch=kill_during_manifest_write),
]


def interrupt_then_resume(tmp_path: Path, output: str, point: Point) -> Published:
    """One attempt stopped at ``point``, the next one from a fresh work folder; the
    second's result as read back from ``output``."""
    config = make_config(tmp_path, **JOB, output={"uri": output})
    first = RunOptions(work_dir=tmp_path / "work1", print_logs=False, callbacks=point.callbacks())
    with pytest.MonkeyPatch.context() as patch:
        if point.patch is not None:
            point.patch(patch)
        if point.by_signal:
            summary = train(config, first)
            assert (summary.exitCode, summary.step) == (exit_codes.INTERRUPTED, point.resumed_at)
        else:
            with pytest.raises(Killed):
                train(config, first)
    resumed = train(config, RunOptions(work_dir=tmp_path / "work2", print_logs=False))
    assert (resumed.outcome, resumed.step, resumed.totalSteps) == ("Succeeded", STEPS, STEPS)
    assert resumed.resumes == 1
    return read_published(output)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Published:
    root = tmp_path_factory.mktemp("uninterrupted")
    summary = train(make_config(root, **JOB), RunOptions(work_dir=root / "work", print_logs=False))
    assert (summary.outcome, summary.step) == ("Succeeded", STEPS), summary.message
    return read_published(f"file://{root / 'out'}")


def check(published: Published, uninterrupted: Published, point: Point) -> None:
    worst = assert_same_result(published, uninterrupted, STEPS)
    print(f"{point.name}: resumed at {point.resumed_at}, max |loss or weight diff| {worst:.1e}")
    assert published.resumed_at() == published.manifest["resumedAtSteps"] == [point.resumed_at]
    assert published.manifest["resumes"] == 1


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_local_store(tmp_path: Path, uninterrupted: Published, point: Point) -> None:
    output = f"file://{tmp_path / 'out'}"
    check(interrupt_then_resume(tmp_path, output, point), uninterrupted, point)


@pytest.fixture
def s3_output(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    yield f"s3://{s3.bucket}/{uuid.uuid4().hex}/out"


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_s3(tmp_path: Path, uninterrupted: Published, s3_output: str, point: Point) -> None:
    check(interrupt_then_resume(tmp_path, s3_output, point), uninterrupted, point)
