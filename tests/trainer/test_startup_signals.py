"""A SIGTERM while the trainer starts, with the trainer as process 1 of its PID namespace,
as in a pod (:mod:`kubetune_trainer.startup_signals`).

The kernel drops a signal sent to a namespace's process 1 that has no handler for it, so
this only shows in a PID namespace of its own: ``unshare`` makes one, inside a user
namespace of its own so that it needs no root.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubetune.render.trainer_config import trainer_config_json
from kubetune_contract import exit_codes
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


def _child_of(pid: int, timeout: float = 30.0) -> int:
    """The one child of ``pid`` (``unshare --fork`` forks the command as process 1)."""
    deadline = time.monotonic() + timeout
    children = Path(f"/proc/{pid}/task/{pid}/children")
    while time.monotonic() < deadline:
        found = children.read_text().split()
        if found:
            return int(found[0])
        time.sleep(0.01)
    raise AssertionError(f"unshare ({pid}) started no child")


def _open_for_writing(fifo: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> int:
    """Open ``fifo`` once the trainer opened it for reading: it is then reading its config,
    past its imports and before its run installs its own signal handler."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        else:
            os.set_blocking(writer, True)
            return writer
        time.sleep(0.01)
    raise AssertionError(f"the trainer never read its config: {process.poll()=}")


def test_a_sigterm_while_the_trainer_starts_stops_it_before_it_trains(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    os.mkfifo(config)
    termination = tmp_path / "termination-log"
    process = subprocess.Popen(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            sys.executable,
            "-m",
            "kubetune_trainer",
        ],
        env={
            **os.environ,
            "KUBETUNE_CONFIG": str(config),
            "KUBETUNE_WORK_DIR": str(tmp_path / "work"),
            "KUBETUNE_TERMINATION_PATH": str(termination),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        trainer = _child_of(process.pid)
        writer = _open_for_writing(config, process)
        # From outside its namespace, as the container runtime sends it. Without a handler
        # the kernel drops it and the trainer trains to the end, exit code 0.
        os.kill(trainer, signal.SIGTERM)
        with os.fdopen(writer, "w") as config_writer:
            config_writer.write(trainer_config_json(make_config(tmp_path)))
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == exit_codes.INTERRUPTED, stderr[-3000:]
    summary = json.loads(termination.read_text())
    assert summary["outcome"] == "Interrupted"
    assert summary["message"].startswith("stopped by SIGTERM outside the training loop;")
    assert not (tmp_path / "out" / "checkpoints").exists()  # it never trained
