"""Direct Preference Optimization (TRL ``DPOTrainer``) on prompt/chosen/rejected rows.

With a PEFT adapter the reference model is the base model with the adapter disabled, so
no second copy of the weights is loaded.
"""

from __future__ import annotations

from transformers import Trainer
from trl import DPOConfig, DPOTrainer

from kubetune_contract.api.resolved import DpoJobSpec
from kubetune_trainer.methods.common import MethodContext, training_arguments


def build(ctx: MethodContext[DpoJobSpec]) -> Trainer:
    settings = ctx.spec.dpo
    config = DPOConfig(
        **training_arguments(ctx),
        beta=float(settings.beta),
        loss_type=[settings.lossType],
        max_length=ctx.dataset.maxLength,
    )
    return DPOTrainer(args=config, **ctx.trainer_kwargs())
