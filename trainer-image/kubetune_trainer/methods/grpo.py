"""Group Relative Policy Optimization (TRL ``GRPOTrainer``): sample several completions per
prompt, score them with the rewards, push towards the better ones of each group."""

from __future__ import annotations

from transformers import Trainer
from trl import GRPOConfig, GRPOTrainer

from kubetune_contract.api.resolved import GrpoJobSpec
from kubetune_trainer.methods.common import MethodContext
from kubetune_trainer.methods.online import config_and_rewards


def build(ctx: MethodContext[GrpoJobSpec]) -> Trainer:
    config, kwargs = config_and_rewards(ctx, ctx.spec.grpo)
    return GRPOTrainer(args=GRPOConfig(**config), **kwargs)
