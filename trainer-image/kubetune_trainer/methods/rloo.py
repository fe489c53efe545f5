"""REINFORCE Leave-One-Out (TRL ``RLOOTrainer``): each completion's baseline is the mean
reward of the other completions for the same prompt."""

from __future__ import annotations

from transformers import Trainer
from trl import RLOOConfig, RLOOTrainer

from kubetune_contract.api.resolved import RlooJobSpec
from kubetune_trainer.methods.common import MethodContext
from kubetune_trainer.methods.online import config_and_rewards


def build(ctx: MethodContext[RlooJobSpec]) -> Trainer:
    config, kwargs = config_and_rewards(ctx, ctx.spec.rloo)
    return RLOOTrainer(args=RLOOConfig(**config), **kwargs)
