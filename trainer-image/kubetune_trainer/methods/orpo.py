"""Odds Ratio Preference Optimization (``trl.experimental.orpo``): SFT and preference in one
loss, without a reference model."""

from __future__ import annotations

from transformers import Trainer
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from kubetune_contract.api.resolved import OrpoJobSpec
from kubetune_trainer.methods.common import MethodContext, training_arguments


def build(ctx: MethodContext[OrpoJobSpec]) -> Trainer:
    settings = ctx.spec.orpo
    config = ORPOConfig(
        **training_arguments(ctx),
        beta=float(settings.beta),
        max_length=ctx.dataset.maxLength,
        # ORPO's collator needs the raw columns; TRL would otherwise override and warn.
        remove_unused_columns=False,
    )
    return ORPOTrainer(args=config, **ctx.trainer_kwargs())
