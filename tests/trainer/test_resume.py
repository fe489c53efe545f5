"""Preemption and resume: a SIGTERMed trainer process resumes to the uninterrupted result.

Tolerance of the parity check: 1e-6 absolute on every per-step loss after the resume (on
CPU with a fixed seed the resumed run repeats the same arithmetic; measured difference 0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kubetune.render.trainer_config import trainer_config_json
from kubetune_contract import exit_codes
from kubetune_trainer import history, storage
from kubetune_trainer.checkpoints import MARKER, CheckpointStore
from kubetune_trainer.run import RunOptions, train
from tests.trainer.helpers import Killed, make_config

pytestmark = pytest.mark.trainer

TOLERANCE = 1e-6
STEPS = 20
#: Only the SIGTERM checkpoint, plus one periodic one, so both kinds are resumed from.
OVERRIDE: dict[str, Any] = {
    "training": {"maxSteps": STEPS},
    "checkpoints": {"intervalSteps": 2, "keep": 2},
}


def losses(work: Path) -> dict[int, float]:
    """Per-step training loss from the run's ``metrics.jsonl`` (whole lines only: a running
    trainer may be writing the last one)."""
    text = (work / "metrics.jsonl").read_text()
    records = [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def wait_for_step(work: Path, step: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (work / "metrics.jsonl").exists() and any(s >= step for s in losses(work)):
            return
        time.sleep(0.02)
    raise AssertionError(f"the trainer never reached step {step}: {process.poll()=}")


def test_sigterm_twice_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    baseline = train(
        make_config(tmp_path / "baseline", **OVERRIDE),
        RunOptions(work_dir=tmp_path / "baseline" / "work", print_logs=False),
    )
    assert (baseline.outcome, baseline.step) == ("Succeeded", STEPS)
    expected = losses(tmp_path / "baseline" / "work")

    root = tmp_path / "preempted"
    config_file = tmp_path / "config.json"
    config_file.write_text(trainer_config_json(make_config(root, **OVERRIDE)))
    termination = tmp_path / "termination-log"
    work = root / "work1"
    process = subprocess.Popen(
        [sys.executable, "-m", "kubetune_trainer", "--config", str(config_file)],
        env={
            **os.environ,
            "KUBETUNE_WORK_DIR": str(work),
            "KUBETUNE_TERMINATION_PATH": str(termination),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_step(work, 3, process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)  # the kubelet, or an impatient user, again
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_codes.INTERRUPTED, stderr[-3000:]
    summary = json.loads(termination.read_text())
    stopped = summary["step"]
    assert 3 <= stopped < STEPS and summary["resumes"] == 0
    # The SIGTERM checkpoint is the newest, complete, and named after the step it was taken at.
    assert summary["checkpoints"][-1] == {
        "step": stopped,
        "uri": f"file://{root / 'out' / 'checkpoints' / f'step-{stopped}'}",
        "evalLoss": None,
    }
    assert [c["step"] for c in summary["checkpoints"]] == [c.step for c in store(root).complete()]
    assert len(summary["checkpoints"]) <= 2

    resumed = train(
        make_config(root, **OVERRIDE), RunOptions(work_dir=root / "work2", print_logs=False)
    )
    assert (resumed.outcome, resumed.step, resumed.resumes) == ("Succeeded", STEPS, 1)
    after = losses(root / "work2")
    assert sorted(after) == list(range(1, STEPS + 1))  # the whole run: the history resumed too
    worst = max(abs(after[step] - expected[step]) for step in after)
    print(f"resume parity: {STEPS} steps, resumed at step {stopped}, max |loss diff| {worst:.2e}")
    assert worst <= TOLERANCE, f"resumed losses differ by up to {worst}"
    for key in ("loss", "trainLoss"):
        assert resumed.metrics[key] == pytest.approx(baseline.metrics[key], abs=TOLERANCE)
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    assert (manifest["resumes"], manifest["resumedAtSteps"]) == (1, [stopped])


def store(root: Path) -> CheckpointStore:
    return CheckpointStore(f"file://{root / 'out'}", keep=2)


def test_a_checkpoint_cut_short_is_never_resumed_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_2 = {"intervalSteps": 2, "keep": 2}
    config = make_config(tmp_path, training={"maxSteps": 4}, checkpoints=every_2)
    upload_dir = storage.upload_dir

    def dies_at_step_4(local: Path, uri: str) -> list[str]:
        if uri.endswith("step-4"):
            (local / "optimizer.pt").unlink()  # only part of the files got there
            upload_dir(local, uri)
            raise Killed
        return upload_dir(local, uri)

    monkeypatch.setattr(storage, "upload_dir", dies_at_step_4)
    with pytest.raises(Killed):
        train(config, RunOptions(work_dir=tmp_path / "work1", print_logs=False))
    monkeypatch.undo()
    remote = tmp_path / "out" / "checkpoints"
    assert (remote / "step-4" / "adapter_model.safetensors").is_file()
    assert not (remote / "step-4" / MARKER).exists()
    assert [c.step for c in store(tmp_path).complete()] == [2]

    resumed = train(
        make_config(tmp_path, training={"maxSteps": 6}, checkpoints=every_2),
        RunOptions(work_dir=tmp_path / "work2", print_logs=False),
    )
    assert (resumed.outcome, resumed.resumes) == ("Succeeded", 1)
    assert history.resume_steps(history.read(tmp_path / "work2" / "metrics.jsonl")) == [2]  # not 4
    assert sorted(losses(tmp_path / "work2")) == [1, 2, 3, 4, 5, 6]
    # Step 4 was saved again, whole this time; keep 2 then dropped step 2.
    assert [c["step"] for c in resumed.checkpoints] == [4, 6]
    assert (remote / "step-4" / "optimizer.pt").is_file() and (remote / "step-4" / MARKER).is_file()
    assert sorted(p.name for p in remote.iterdir()) == ["step-4", "step-6"]


def test_incomplete_checkpoints_are_skipped_and_pruned(tmp_path: Path) -> None:
    checkpoints = store(tmp_path)
    local = tmp_path / "local"
    local.mkdir()
    (local / "trainer_state.json").write_text("{}")
    for step in (1, 2, 3):
        checkpoints.upload(local, step, eval_loss=0.5 * step, resumes=step - 1)
    remote = tmp_path / "out" / "checkpoints"
    assert sorted(p.name for p in remote.iterdir()) == ["step-2", "step-3"]  # keep 2
    for step in (4, 5):  # uploads that died before their marker
        storage.upload_dir(local, f"file://{remote / f'step-{step}'}")
    latest = checkpoints.latest()
    assert latest is not None and (latest.step, latest.evalLoss, latest.resumes) == (3, 1.5, 2)
    fetched = checkpoints.fetch(latest, tmp_path / "work")
    assert fetched.name == "checkpoint-3" and not (fetched / MARKER).exists()

    checkpoints.upload(local, 6, eval_loss=None)
    # Older incomplete ones go; complete ones beyond keep go.
    assert sorted(p.name for p in remote.iterdir()) == ["step-3", "step-6"]
