"""The entry point end to end: manifest, termination message, exit codes, metrics, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kubetune.render.trainer_config import trainer_config_json
from kubetune_contract import exit_codes
from kubetune_trainer.__main__ import main
from kubetune_trainer.builtin import materialize
from kubetune_trainer.checkpoints import MARKER
from kubetune_trainer.run import RunOptions, execute, train
from tests.trainer.helpers import CHAT_ROWS, SignalAt, free_port, make_config

pytestmark = pytest.mark.trainer


def termination_message() -> dict[str, Any]:
    message: dict[str, Any] = json.loads(Path(os.environ["KUBETUNE_TERMINATION_PATH"]).read_text())
    return message


def run_main(tmp_path: Path, **override: Any) -> int:
    config_file = tmp_path / "config.json"
    config_file.write_text(trainer_config_json(make_config(tmp_path, **override)))
    os.environ["KUBETUNE_WORK_DIR"] = str(tmp_path / "work")
    try:
        return main(["--config", str(config_file)])
    finally:
        del os.environ["KUBETUNE_WORK_DIR"]


def test_success_writes_manifest_last_and_a_termination_summary(tmp_path: Path) -> None:
    assert run_main(tmp_path, dataset={"validationSplit": "0.25"}) == exit_codes.SUCCESS
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    config = make_config(tmp_path, dataset={"validationSplit": "0.25"})
    assert manifest["specDigest"] == config.specDigest
    assert manifest["config"]["spec"]["method"] == "sft"
    assert manifest["job"] == {"name": "test-job", "namespace": "default", "uid": "uid-1"}
    assert {"torch", "transformers", "trl", "peft", "python"} <= set(manifest["versions"])
    [data_file] = manifest["data"]["files"]
    train_bytes = (tmp_path / "data" / "train.jsonl").read_bytes()
    import hashlib

    assert data_file["sha256"] == hashlib.sha256(train_bytes).hexdigest()
    assert (data_file["rows"], manifest["data"]["trainRows"], manifest["data"]["evalRows"]) == (
        len(CHAT_ROWS),
        6,
        2,
    )
    assert {"loss", "evalLoss"} <= set(manifest["metrics"])
    # Every uploaded file is older than the manifest: it was written last.
    manifest_time = (out / "manifest.json").stat().st_mtime_ns
    assert all(
        Path(f[len("file://") :]).stat().st_mtime_ns <= manifest_time for f in manifest["files"]
    )
    assert str(out / "metrics.jsonl") in {f[len("file://") :] for f in manifest["files"]}

    summary = termination_message()
    assert (summary["outcome"], summary["exitCode"], summary["step"], summary["totalSteps"]) == (
        "Succeeded",
        0,
        2,
        2,
    )
    assert summary["result"]["manifestUri"] == f"file://{out}/manifest.json"
    assert summary["metrics"]["evalLoss"] == manifest["metrics"]["evalLoss"]
    assert len(json.dumps(summary)) < 4096


def test_bad_data_exits_with_invalid_input_and_names_the_row(tmp_path: Path) -> None:
    rows = [*CHAT_ROWS[:3], {"messages": [{"role": "user", "content": 5}]}]
    assert run_main(tmp_path, rows=rows) == exit_codes.INVALID_INPUT
    summary = termination_message()
    assert (summary["outcome"], summary["reason"]) == ("Failed", "InvalidData")
    assert "train.jsonl, row 4: messages[0] content must be a string" in summary["message"]
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_missing_or_invalid_config_is_an_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--config", str(tmp_path / "absent.json")]) == exit_codes.INVALID_INPUT
    assert termination_message()["reason"] == "InvalidConfig"
    config = json.loads(trainer_config_json(make_config(tmp_path)))
    config["spec"]["training"]["learningRate"] = "fast"
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("KUBETUNE_CONFIG", str(tmp_path / "config.json"))  # no --config
    assert main([]) == exit_codes.INVALID_INPUT
    assert "spec.training.learningRate" in termination_message()["message"]


def test_metrics_endpoint_serves_training_progress(tmp_path: Path) -> None:
    port = free_port()
    train(
        make_config(tmp_path, dataset={"validationSplit": "0.25"}),
        RunOptions(work_dir=tmp_path / "work", metrics_port=port, print_logs=False),
    )
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("kubetune_trainer_")
    }
    assert values["kubetune_trainer_step"] == 2
    assert values["kubetune_trainer_total_steps"] == 2
    assert values["kubetune_trainer_epoch"] > 0
    assert values["kubetune_trainer_loss"] > 0 and values["kubetune_trainer_eval_loss"] > 0
    assert values["kubetune_trainer_tokens_per_second"] > 0
    assert values["kubetune_trainer_samples_per_second"] > 0
    assert values["kubetune_trainer_learning_rate"] > 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_a_checkpoint_and_the_next_run_resumes(
    tmp_path: Path, signum: int
) -> None:
    """SIGTERM (the kubelet) and SIGINT (Ctrl-C in ``kubetune run``) stop alike."""
    config = make_config(tmp_path, training={"maxSteps": 100_000})
    interrupted = train(
        config,
        RunOptions(work_dir=tmp_path / "work1", print_logs=False, callbacks=[SignalAt(1, signum)]),
    )
    assert (interrupted.outcome, interrupted.exitCode) == ("Interrupted", exit_codes.INTERRUPTED)
    assert f"stopped by {signal.Signals(signum).name} at step 2 of 100000" in interrupted.message
    [checkpoint] = interrupted.checkpoints
    # The signal came after the preemption callback had looked at step 1: saved after step 2.
    assert checkpoint["step"] == interrupted.step == 2
    remote = tmp_path / "out" / "checkpoints" / "step-2"
    assert checkpoint["uri"] == f"file://{remote}" and (remote / MARKER).is_file()
    assert not (tmp_path / "out" / "manifest.json").exists()

    resumed = train(
        make_config(tmp_path, training={"maxSteps": 4}),
        RunOptions(work_dir=tmp_path / "work2", print_logs=False),
    )
    assert (resumed.outcome, resumed.step, resumed.resumes) == ("Succeeded", 4, 1)
    logged = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2, 3, 4]  # the whole run
    assert [(r["step"], r["resumes"]) for r in logged if "resumes" in r] == [(2, 1)]


def test_a_stop_signal_outside_the_training_loop_stops_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before training there is nothing to save, while publishing nothing worth waiting
    for (the manifest comes last): exit 5 at once, and the next run resumes."""
    from kubetune_trainer import adapters, artifacts

    load = adapters.load

    def load_then_sigterm(*args: Any, **kwargs: Any) -> Any:
        loaded = load(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # while the run loads the model
        return loaded

    monkeypatch.setattr(adapters, "load", load_then_sigterm)
    config = make_config(tmp_path, training={"maxSteps": 2})
    before = execute(lambda: config, RunOptions(work_dir=tmp_path / "work1", print_logs=False))
    assert (before.outcome, before.exitCode, before.step) == ("Interrupted", 5, 0)
    assert before.message.startswith("stopped by SIGTERM outside the training loop;")
    assert not (tmp_path / "out" / "checkpoints").exists()
    monkeypatch.undo()

    save_final = artifacts.save_final

    def save_then_sigint(*args: Any, **kwargs: Any) -> None:
        save_final(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the result is published

    monkeypatch.setattr(artifacts, "save_final", save_then_sigint)
    after = execute(lambda: config, RunOptions(work_dir=tmp_path / "work2", print_logs=False))
    assert (after.outcome, after.exitCode) == ("Interrupted", 5)
    assert after.message.startswith("stopped by SIGINT outside the training loop;")
    assert not (tmp_path / "out" / "manifest.json").exists()
    monkeypatch.undo()

    published = execute(lambda: config, RunOptions(work_dir=tmp_path / "work3", print_logs=False))
    assert (published.outcome, published.step, published.resumes) == ("Succeeded", 2, 1)
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_conversational_data_needs_a_chat_template(tmp_path: Path) -> None:
    model = tmp_path / "base-model"
    shutil.copytree(materialize("tiny-llama"), model)
    (model / "chat_template.jinja").unlink()
    config = make_config(tmp_path, model={"uri": f"file://{model}"})
    summary = execute(lambda: config, RunOptions(work_dir=tmp_path / "work"))
    assert (summary.exitCode, summary.reason) == (exit_codes.INVALID_INPUT, "InvalidConfig")
    assert "has no chat template" in summary.message


def test_the_module_entry_point_exits_with_the_code(tmp_path: Path) -> None:
    """``python -m kubetune_trainer`` as the pod runs it: a real process and exit status."""
    config_file = tmp_path / "config.json"
    rows = [{"prompt": "only a prompt"}]  # sft needs completions
    config_file.write_text(trainer_config_json(make_config(tmp_path, rows=rows)))
    termination = tmp_path / "termination-log"
    result = subprocess.run(
        [sys.executable, "-m", "kubetune_trainer"],
        env={
            **os.environ,
            "KUBETUNE_CONFIG": str(config_file),
            "KUBETUNE_TERMINATION_PATH": str(termination),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == exit_codes.INVALID_INPUT, result.stderr[-2000:]
    summary = json.loads(termination.read_text())
    assert summary["reason"] == "InvalidData"
    assert "row 1: sft needs a completion for every prompt" in summary["message"]
    assert "InvalidData" in result.stderr and "Traceback" not in result.stderr
