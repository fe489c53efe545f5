"""``kubetune run`` as a user runs it: Ctrl-C saves a checkpoint, says how to go on, exits 5.

The CLI runs the trainer as a child process; Ctrl-C in a terminal signals both (the whole
foreground process group), which the test does with ``killpg`` on a session of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli.manifest import run_config
from kubetune_contract import exit_codes
from kubetune_trainer.checkpoints import CheckpointStore
from kubetune_trainer.commands.local import run_local
from tests.cases.manifests import merge
from tests.trainer.helpers import BASE_SPEC, CHAT_ROWS, job_document, write_jsonl

pytestmark = pytest.mark.trainer

KUBETUNE = str(Path(sysconfig.get_path("scripts")) / "kubetune")


def write_manifest(folder: Path, max_steps: int) -> Path:
    """A FineTuneJob file with relative URIs, as a user writes one."""
    write_jsonl(folder / "data" / "train.jsonl", CHAT_ROWS)
    spec = merge(
        BASE_SPEC,
        {
            "dataset": {"train": {"uri": "file://data/train.jsonl"}},
            "training": {"maxSteps": max_steps},
            "output": {"uri": "file://out"},
        },
    )
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job_document(spec)), encoding="utf-8")
    return path


def wait_for_a_step(metrics: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and '"loss"' in metrics.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"kubetune run never trained a step: {process.poll()=}")


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, max_steps=100_000)
    process = subprocess.Popen(
        [KUBETUNE, "run", str(manifest), "--no-progress", "--work-dir", str(tmp_path / "work")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    wait_for_a_step(tmp_path / "work" / "metrics.jsonl", process)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == exit_codes.INTERRUPTED, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "Interrupted: stopped by SIGINT at step" in output
    assert f"continue with: kubetune run --resume {manifest}" in output
    [checkpoint] = CheckpointStore(f"file://{tmp_path / 'out'}", keep=1).complete()

    # The job, told to stop two steps later, continues from that checkpoint.
    write_manifest(tmp_path, max_steps=checkpoint.step + 2)
    summary = run_local(
        run_config(manifest), work_dir=tmp_path / "work", progress=False, resume=True
    )
    assert (summary.outcome, summary.step, summary.resumes) == ("Succeeded", checkpoint.step + 2, 1)
    records: list[dict[str, Any]] = [
        json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()
    ]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, checkpoint.step + 3))
