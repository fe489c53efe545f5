"""training.sharding: the FSDP settings the Trainer gets, and the refusal where FSDP can't run.

accelerate applies FSDP only across accelerators, so on this CPU-only machine the sharded
path itself is not trained end to end; what runs here is the mapping and the refusal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import TrainingArguments

from kubetune_contract import exit_codes
from kubetune_trainer import sharding
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.run import RunOptions, execute
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


def test_fsdp_is_fsdp2_with_full_state_dicts_and_its_own_activation_checkpointing(
    tmp_path: Path,
) -> None:
    assert sharding.training_arguments("none", True, on_gpu=False, world_size=1) == {}
    fields = sharding.training_arguments("fsdp", True, on_gpu=True, world_size=2)
    args = TrainingArguments(output_dir=str(tmp_path), **fields)
    assert args.fsdp_plugin_args is not None
    assert args.fsdp_plugin_args["fsdp_version"] == 2
    assert args.fsdp_plugin_args["state_dict_type"] == "FULL_STATE_DICT"
    assert args.fsdp_plugin_args["activation_checkpointing"] is True
    assert args.activation_checkpointing is False


@pytest.mark.parametrize(("on_gpu", "world_size"), [(False, 2), (True, 1)])
def test_fsdp_without_several_gpus_is_refused(on_gpu: bool, world_size: int) -> None:
    with pytest.raises(InvalidConfigError, match="needs at least 2 GPUs in total"):
        sharding.training_arguments("fsdp", False, on_gpu=on_gpu, world_size=world_size)


def test_a_job_asking_for_fsdp_on_cpu_fails_as_invalid_config(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        adapter={"type": "full", "lora": None},
        training={"sharding": "fsdp"},
        resources={"gpus": 2},
    )
    summary = execute(lambda: config, RunOptions(work_dir=tmp_path / "work", print_logs=False))
    assert (summary.exitCode, summary.reason) == (exit_codes.INVALID_INPUT, "InvalidConfig")
    assert "training.sharding fsdp needs at least 2 GPUs" in summary.message
