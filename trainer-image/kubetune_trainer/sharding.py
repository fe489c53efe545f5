"""``training.sharding`` -> the Trainer's FSDP settings.

``fsdp`` runs PyTorch FSDP2 through accelerate: parameters, gradients and optimizer state
are split over the ranks, and each transformer block (the model's ``_no_split_modules``)
is gathered only while it computes. accelerate applies FSDP only across accelerators: on
CPU or a single GPU it would silently train unsharded, so that is refused instead.

- ``FULL_STATE_DICT``: a checkpoint's weights and optimizer state are gathered to rank 0
  and written as ordinary files, so rank 0 alone uploads a complete checkpoint (sharded
  state dicts would leave each node's shards on that node's disk) and the final weights
  load without FSDP. It costs a gather at each save; for models whose full state does not
  fit in rank 0's host memory, sharded checkpoints would be the next step.
- activation checkpointing is FSDP's own (``fsdp_config``), not the Trainer's, which
  would all-gather each block a second time in the backward pass.
"""

from __future__ import annotations

from typing import Any

from kubetune_trainer.errors import InvalidConfigError


def training_arguments(
    sharding: str, gradient_checkpointing: bool, *, on_gpu: bool, world_size: int
) -> dict[str, Any]:
    """``TrainingArguments`` fields for ``sharding``, overriding the common ones."""
    if sharding == "none":
        return {}
    if not on_gpu or world_size < 2:
        where = f"{world_size} GPU process(es)" if on_gpu else "no GPU"
        raise InvalidConfigError(
            f"training.sharding fsdp needs at least 2 GPUs in total, and this run has {where}; "
            "FSDP shards across accelerators only (on CPU or one GPU use sharding none)"
        )
    return {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "state_dict_type": "FULL_STATE_DICT",
            "activation_checkpointing": gradient_checkpointing,
        },
        "activation_checkpointing": False,
    }
