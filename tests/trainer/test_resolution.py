"""What only the machine decides, each in one place: the precision ``auto`` left by render,
the world size, and the per-device batch every trainer argument takes from the run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from kubetune_trainer import adapters, distributed
from kubetune_trainer.batch_sizing import BatchSize
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.methods.common import MethodContext, training_arguments
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


def _context(tmp_path: Path, batch: BatchSize, **override: Any) -> MethodContext[Any]:
    """A method context with the rendered spec; no model is needed for the arguments."""
    return MethodContext(
        spec=make_config(tmp_path, **override).spec,
        model=None,
        tokenizer=None,
        peft_config=None,
        data=SimpleNamespace(train=[], eval=None),
        output_dir=tmp_path / "checkpoints",
        batch=batch,
    )


def test_an_explicit_precision_is_used_as_written() -> None:
    assert adapters.device_precision("fp16") == "fp16"
    assert adapters.compute_dtype("bf16") == torch.bfloat16


def test_precision_auto_without_cuda_is_fp32_for_weights_and_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine without CUDA, whether or not this one has a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert adapters.compute_dtype("auto") == torch.float32
    arguments = training_arguments(
        _context(tmp_path, BatchSize(2), training={"precision": "auto"}, resources={"gpus": 1})
    )
    assert (arguments["bf16"], arguments["fp16"]) == (False, False)


def test_the_world_size_is_torchruns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.world_size() == 1
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.world_size() == 4


def test_the_arguments_take_the_runs_batch_not_a_second_resolution(tmp_path: Path) -> None:
    """``auto`` is resolved once by the run (for the log, the result and the arguments)."""
    batch = BatchSize(16, probe=True, note="probing")
    arguments = training_arguments(_context(tmp_path, batch, training={"batchSize": "auto"}))
    assert arguments["per_device_train_batch_size"] == 16
    assert arguments["per_device_eval_batch_size"] == 16
    assert arguments["auto_find_batch_size"] is True


def test_sharding_sees_the_world_size_torchrun_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec asks for 2 GPUs; whether fsdp can run is what the launch made of it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    context = _context(
        tmp_path,
        BatchSize(2),
        adapter={"type": "full", "lora": None},
        training={"sharding": "fsdp"},
        resources={"gpus": 2},
    )
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(InvalidConfigError, match=r"this run has 1 GPU process\(es\)"):
        training_arguments(context)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert training_arguments(context)["fsdp"] is True
