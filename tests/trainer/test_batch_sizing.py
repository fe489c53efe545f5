"""Memory options: batchSize auto, gradient checkpointing and precision reaching the
trainer (every optimizer, 8-bit ones on CPU included, is covered in test_methods)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune_contract import exit_codes
from kubetune_trainer.batch_sizing import (
    AUTO_START,
    CPU_AUTO,
    EVAL_START,
    EvalBatchFollowsTraining,
    batch_size,
)
from kubetune_trainer.run import RunOptions, execute
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


def run(tmp_path: Path, training: dict[str, Any]) -> Any:
    config = make_config(tmp_path, training=training)
    return execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )


def test_auto_batch_size_on_cpu_uses_the_safe_default_and_says_so(tmp_path: Path) -> None:
    summary = run(tmp_path, {"batchSize": "auto", "maxSteps": 1})
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    assert f"training.batchSize auto: {CPU_AUTO} per device on CPU" in summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["batchSize"] == {"auto": True, "perDevice": CPU_AUTO, "probed": False}


def test_auto_batch_size_on_gpu_probes_from_a_start_that_fits_the_data() -> None:
    config = make_config(Path("/unused"), training={"batchSize": "auto"})
    training = config.spec.training
    assert batch_size(training, on_gpu=True, train_rows=10_000).size == AUTO_START
    small = batch_size(training, on_gpu=True, train_rows=20)
    assert (small.size, small.probe) == (32, True)
    assert (
        batch_size(
            config.spec.training.model_copy(update={"batchSize": 8}), on_gpu=True, train_rows=20
        ).probe
        is False
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="probing needs a GPU")
def test_auto_batch_size_on_a_gpu_probes_and_reports_the_batch_it_trained_with(
    tmp_path: Path,
) -> None:
    summary = run(tmp_path, {"batchSize": "auto", "maxSteps": 1, "precision": "bf16"})
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # The tiny model fits the whole start batch (8 rows -> a start of 8).
    assert manifest["batchSize"] == {"auto": True, "perDevice": 8, "probed": True}


def test_evaluation_starts_small_and_then_follows_the_probed_training_batch(
    tmp_path: Path,
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=AUTO_START)
    state, control = TrainerState(), TrainerControl()
    follow = EvalBatchFollowsTraining()
    follow.on_init_end(args, state, control)
    assert args.per_device_eval_batch_size == EVAL_START  # the evaluation before training
    state.train_batch_size = 32  # what the training loop settled on after two halvings
    follow.on_train_begin(args, state, control)
    assert args.per_device_eval_batch_size == 32


def test_gradient_checkpointing_and_precision_reach_the_trainer(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    class Probe(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen["checkpointing"] = kwargs["model"].is_activation_checkpointing
            seen["bf16"] = args.bf16

    config = make_config(
        tmp_path, training={"gradientCheckpointing": True, "precision": "bf16", "maxSteps": 1}
    )
    summary = execute(
        lambda: config,
        RunOptions(
            work_dir=tmp_path / "work", metrics_port=0, print_logs=False, callbacks=[Probe()]
        ),
    )
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    assert seen["checkpointing"] is True and seen["bf16"] is True
