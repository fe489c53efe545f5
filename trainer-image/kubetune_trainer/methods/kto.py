"""Kahneman-Tversky Optimization (TRL ``KTOTrainer``) on rows labelled good or bad.

Paired preference data is accepted too: :mod:`kubetune_trainer.data` splits each pair
into a desirable and an undesirable row.
"""

from __future__ import annotations

from transformers import Trainer
from trl import KTOConfig, KTOTrainer

from kubetune_contract.api.resolved import KtoJobSpec
from kubetune_trainer.methods.common import MethodContext, training_arguments


def build(ctx: MethodContext[KtoJobSpec]) -> Trainer:
    settings = ctx.spec.kto
    config = KTOConfig(
        **training_arguments(ctx),
        beta=float(settings.beta),
        desirable_weight=float(settings.desirableWeight),
        undesirable_weight=float(settings.undesirableWeight),
        max_length=ctx.dataset.maxLength,
    )
    return KTOTrainer(args=config, **ctx.trainer_kwargs())
