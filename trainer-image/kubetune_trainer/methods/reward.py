"""Reward modelling (TRL ``RewardTrainer``): a sequence classifier with one output that
scores chosen above rejected. Its output is a valid ``reward.model.uri`` for grpo/rloo."""

from __future__ import annotations

from transformers import Trainer
from trl import RewardConfig, RewardTrainer

from kubetune_contract.api.resolved import RewardJobSpec
from kubetune_trainer.methods.common import MethodContext, training_arguments


def build(ctx: MethodContext[RewardJobSpec]) -> Trainer:
    config = RewardConfig(**training_arguments(ctx), max_length=ctx.dataset.maxLength)
    return RewardTrainer(args=config, **ctx.trainer_kwargs())
