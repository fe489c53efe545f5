"""Running the trainer's local commands for ``kubetune run``, ``eval``, ``plot`` and ``data``.

The operator's distribution never imports the trainer (two images with their own
dependencies, meeting only in ``kubetune_contract``), so these commands start
``python -m kubetune_trainer COMMAND ...`` (:mod:`kubetune_trainer.commands`) from this
interpreter as a child process that shares the terminal, and exit with its exit code.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from kubetune.cli.manifest import ManifestError, run_config
from kubetune.render.trainer_config import trainer_config_json
from kubetune_contract import exit_codes

TRAINER_MISSING = 2


def run_trainer(command: str, argv: Sequence[str], *, manifest: Path | None = None) -> int:
    """Run ``python -m kubetune_trainer ARGV`` to its end; its exit code.

    ``command`` is the kubetune command, for the hint when the trainer is not installed.
    With ``manifest``, its FineTuneJob is validated and rendered to the run config
    (:func:`~kubetune.cli.manifest.run_config`); the child gets ``--config`` with that
    file, which lives as long as the child runs.
    """
    if importlib.util.find_spec("kubetune_trainer") is None:
        print(f"kubetune {command} needs the trainer extra (pip install 'kubetune[trainer]')")
        return TRAINER_MISSING
    trainer = [sys.executable, "-m", "kubetune_trainer", *argv]
    if manifest is None:
        return run_child(trainer)
    try:
        config = run_config(manifest)
    except ManifestError as invalid:
        print(invalid)
        return exit_codes.INVALID_INPUT
    with tempfile.TemporaryDirectory(prefix="kubetune-") as folder:
        path = Path(folder) / "config.json"
        path.write_text(trainer_config_json(config), encoding="utf-8")
        return run_child([*trainer, "--config", str(path)])


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGINT in the parent: the child got it as well and decides what it means."""


def run_child(argv: Sequence[str]) -> int:
    """Run ``argv`` with this terminal until it exits; its exit code (128 + N after a
    signal N killed it, as a shell reports it).

    Ctrl-C reaches the child directly: the terminal sends SIGINT to its whole foreground
    process group. The child may take a while to finish its step and save a checkpoint,
    so the parent ignores SIGINT until the child is gone instead of handing the prompt
    back over a process still writing. SIGTERM (``kill``, a supervisor) reaches only the
    parent, which passes it on, so the child stops as a pod does. The handlers are Python
    functions rather than ``SIG_IGN`` because an ignored signal stays ignored across
    ``exec``: the child must start with SIGINT at its default.
    """
    child: subprocess.Popen[bytes] | None = None
    early: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if child is None:
            early.append(signum)
        else:
            child.send_signal(signum)

    sys.stdout.flush()
    sys.stderr.flush()
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, _ignore),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
    }
    try:
        child = subprocess.Popen(list(argv))
        for signum in early:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler or signal.SIG_DFL)
    return 128 - code if code < 0 else code
