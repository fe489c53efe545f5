"""Two trainer processes under torchrun (gloo on CPU), as a 2-GPU pod runs them.

The environment is what the operator renders for ``resources.gpus: 2`` (``PET_NNODES``,
``PET_NPROC_PER_NODE``; ``--standalone`` for one node); the command is the exit-code
preserving launcher (:mod:`kubetune_trainer.launch`) around torchrun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubetune.render.trainer_config import trainer_config_json
from kubetune_contract import exit_codes
from kubetune_trainer.checkpoints import MARKER
from tests.trainer.helpers import free_port, make_config
from tests.trainer.test_resume import losses, wait_for_step

pytestmark = pytest.mark.trainer


def launch(
    tmp_path: Path,
    work: str,
    node: dict[str, str] | None = None,
    termination: str = "termination-log",
    **override: Any,
) -> subprocess.Popen[str]:
    """One pod's command and environment; ``node``: the multi-node ``PET_*`` variables."""
    config_file = tmp_path / "config.json"
    config_file.write_text(trainer_config_json(make_config(tmp_path, **override)))
    pet = node or {"PET_NNODES": "1", "PET_NPROC_PER_NODE": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "kubetune_trainer.launch", *([] if node else ["--standalone"])],
        env={
            **os.environ,
            "KUBETUNE_CONFIG": str(config_file),
            "KUBETUNE_WORK_DIR": str(tmp_path / work),
            "KUBETUNE_TERMINATION_PATH": str(tmp_path / termination),
            "OMP_NUM_THREADS": "1",
            **pet,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def summary(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "termination-log").read_text())
    return data


def test_two_processes_train_checkpoint_on_sigterm_and_resume(tmp_path: Path) -> None:
    every_2 = {"intervalSteps": 2, "keep": 2}
    first = launch(tmp_path, "work1", training={"maxSteps": 100_000}, checkpoints=every_2)
    wait_for_step(tmp_path / "work1", 2, first)
    first.send_signal(signal.SIGTERM)  # to the launcher, as the kubelet does (PID 1)
    _, stderr = first.communicate(timeout=120)
    # torchrun itself exits 1 here; the launcher passes on the trainer's code.
    assert first.returncode == exit_codes.INTERRUPTED, stderr[-3000:]
    interrupted = summary(tmp_path)
    stopped = interrupted["step"]
    assert interrupted["outcome"] == "Interrupted" and stopped >= 2
    remote = tmp_path / "out" / "checkpoints" / f"step-{stopped}"
    # Rank 0 uploaded once both ranks had written their RNG state.
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", MARKER} <= {
        p.name for p in remote.iterdir()
    }

    second = launch(tmp_path, "work2", training={"maxSteps": stopped + 2}, checkpoints=every_2)
    _, stderr = second.communicate(timeout=180)
    assert second.returncode == exit_codes.SUCCESS, stderr[-3000:]
    resumed = summary(tmp_path)
    assert (resumed["step"], resumed["resumes"]) == (stopped + 2, 1)
    assert sorted(losses(tmp_path / "work2")) == list(range(1, stopped + 3))  # the whole run
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["resumes"] == 1


def test_the_launcher_passes_on_an_invalid_input_code(tmp_path: Path) -> None:
    """torchrun alone would exit 1 and the Job would retry a config that cannot work."""
    process = launch(tmp_path, "work", rows=[{"prompt": "only a prompt"}])
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == exit_codes.INVALID_INPUT, stderr[-3000:]
    assert summary(tmp_path)["reason"] == "InvalidData"


def test_two_nodes_upload_one_whole_checkpoint_with_every_ranks_rng_state(
    tmp_path: Path,
) -> None:
    """Two pods of one process each, as an Indexed Job with nodes: 2 renders them; each
    node has its own disk (work dir), rank 0's node uploads."""
    nodes = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": "1", "PET_MASTER_ADDR": "127.0.0.1"}
    nodes["PET_MASTER_PORT"] = str(free_port())
    every_2 = {"intervalSteps": 2, "keep": 2}
    pods = [
        launch(
            tmp_path,
            f"node{rank}",
            {**nodes, "PET_NODE_RANK": str(rank)},
            f"termination-{rank}",
            training={"maxSteps": 4},
            checkpoints=every_2,
        )
        for rank in (0, 1)
    ]
    for pod in pods:
        _, stderr = pod.communicate(timeout=180)
        assert pod.returncode == exit_codes.SUCCESS, stderr[-3000:]
    remote = tmp_path / "out" / "checkpoints" / "step-4"
    assert {"rng_state_0.pth", "rng_state_1.pth", MARKER} <= {p.name for p in remote.iterdir()}
    assert json.loads((tmp_path / "termination-0").read_text())["result"]["manifestUri"]
    assert json.loads((tmp_path / "termination-1").read_text())["result"] == {}
