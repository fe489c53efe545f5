"""How ``kubetune run``/``eval``/``plot``/``data`` start the trainer: a child process with
the rendered run config, the flags the trainer's parser accepts, its exit code, and
signals passed on as a terminal and a supervisor send them (no training here)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli import main, trainer
from kubetune_contract import exit_codes
from kubetune_trainer.__main__ import build_parser as trainer_parser
from kubetune_trainer.commands import evaluate, local

JOB = {
    "apiVersion": "kubetune.io/v1alpha1",
    "kind": "FineTuneJob",
    "metadata": {"name": "colours", "namespace": "default"},
    "spec": {
        "method": "sft",
        "model": {"uri": "builtin://tiny-llama"},
        "dataset": {"train": {"uri": "file://data/train.jsonl"}},
        "output": {"uri": "file://out"},
    },
}


def _manifest(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


class _Trainer:
    """Stands in for :func:`kubetune.cli.trainer.run_child`: parses what the trainer would
    get with the trainer's own parser and reads the config file while it exists."""

    def __init__(self, code: int = 0) -> None:
        self.code = code
        self.argv: list[str] = []
        self.args = argparse.Namespace()
        self.config: dict[str, Any] = {}

    def __call__(self, argv: Sequence[str]) -> int:
        self.argv = list(argv)
        assert self.argv[:3] == [sys.executable, "-m", "kubetune_trainer"]
        self.args = trainer_parser().parse_args(self.argv[3:])
        if self.args.config:
            self.config = json.loads(Path(self.args.config).read_text())
        return self.code


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> _Trainer:
    fake = _Trainer(code=exit_codes.INTERRUPTED)
    monkeypatch.setattr(trainer, "run_child", fake)
    return fake


def test_run_renders_the_manifest_and_forwards_its_flags(tmp_path: Path, child: _Trainer) -> None:
    manifest = _manifest(tmp_path, JOB)
    argv = ["run", str(manifest), "--work-dir", str(tmp_path / "w"), "--resume"]
    assert main([*argv, "--no-progress", "--metrics-port", "9400"]) == exit_codes.INTERRUPTED
    args = child.args
    assert args.handler is local.run
    assert (args.work_dir, args.resume, args.no_progress) == (tmp_path / "w", True, True)
    assert args.metrics_port == 9400
    assert args.resume_command == f"kubetune run --resume {manifest}"
    # Rendered as the operator renders it, relative file:// URIs next to the manifest.
    assert child.config["job"]["name"] == "colours"
    assert child.config["spec"]["dataset"]["train"]["uri"] == f"file://{tmp_path}/data/train.jsonl"
    assert child.config["specDigest"].startswith("sha256:")
    assert not Path(args.config).exists()  # the file lives as long as the child


def test_eval_plot_and_data_forward_to_the_trainers_commands(
    tmp_path: Path, child: _Trainer
) -> None:
    manifest = _manifest(tmp_path, JOB)
    main(["eval", str(manifest), "--adapter", "s3://b/r", "--max-prompts", "3"])
    assert child.args.handler is evaluate.run
    assert (child.args.adapter, child.args.output, child.args.max_prompts) == (
        "s3://b/r",
        "job-evaluation",
        3,
    )
    assert child.config["spec"]["model"]["uri"] == "builtin://tiny-llama"
    main(["plot", "s3://b/r/", "--evaluation", "-o", "x.png"])
    assert child.argv[3:] == ["plot", "s3://b/r/", "--output", "x.png", "--evaluation"]
    main(["data", "check", "train.jsonl", "--min-length", "5", "--json"])
    assert child.argv[3:] == ["data", "check", "train.jsonl", "--min-length", "5", "--json"]
    with pytest.raises(SystemExit):  # the trainer's own parser answers --help
        main(["data", "--help"])
    assert child.argv[3:] == ["data", "--help"]


def test_an_invalid_manifest_is_refused_before_the_trainer_starts(
    tmp_path: Path, child: _Trainer, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {**JOB, "spec": {**JOB["spec"], "training": {"batchSize": 0}}}
    manifest = _manifest(tmp_path, bad)
    for command in (["run", str(manifest)], ["eval", str(manifest), "--adapter", "x"]):
        assert main(command) == exit_codes.INVALID_INPUT
        assert f"{manifest}: spec.training.batchSize:" in capsys.readouterr().out
    (tmp_path / "two.yaml").write_text(yaml.safe_dump_all([JOB, JOB]))
    assert main(["run", str(tmp_path / "two.yaml")]) == exit_codes.INVALID_INPUT
    assert "expected one FineTuneJob, found 2 documents" in capsys.readouterr().out
    assert child.argv == []


def test_without_the_trainer_each_command_says_which_extra(
    tmp_path: Path,
    child: _Trainer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "kubetune_trainer" else find_spec(name, *rest),
    )
    manifest = _manifest(tmp_path, JOB)
    for command in (
        ["run", str(manifest)],
        ["eval", str(manifest), "--adapter", "x"],
        ["plot", str(tmp_path)],
        ["data", "check", "x.jsonl"],
    ):
        assert main(command) == trainer.TRAINER_MISSING
        assert (
            f"kubetune {command[0]} needs the trainer extra (pip install 'kubetune[trainer]')"
            in capsys.readouterr().out
        )
    assert child.argv == []


CHILD = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
def stop(signum, frame):
    out.write_text(signal.Signals(signum).name)
    sys.exit(5)
signal.signal(signal.SIGTERM, stop)
out.with_suffix(".ready").touch()
time.sleep(60)
"""


def test_the_parent_outlives_sigint_and_passes_sigterm_on(tmp_path: Path) -> None:
    """Ctrl-C reaches the child from the terminal, not from the parent: a SIGINT to the
    parent alone changes nothing (forwarded, it would end the child with a
    KeyboardInterrupt, exit 1); a SIGTERM to the parent reaches the child."""
    out = tmp_path / "signal"
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def signal_the_parent() -> None:
        while not out.with_suffix(".ready").exists():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=signal_the_parent)
    sender.start()
    code = trainer.run_child([sys.executable, "-c", CHILD, str(out)])
    sender.join()
    assert (code, out.read_text()) == (5, "SIGTERM")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_child_killed_by_a_signal_exits_as_a_shell_reports_it() -> None:
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert trainer.run_child([sys.executable, "-c", kill]) == 128 + signal.SIGKILL
