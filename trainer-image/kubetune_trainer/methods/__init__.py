"""Training methods, one module each; :func:`build` picks the module for ``spec.method``.

Modules are imported on demand so that a job pays only for the TRL trainer it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kubetune_contract.api.dataset import DatasetSpec
from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.methods.common import MethodContext

if TYPE_CHECKING:
    from transformers import Trainer

METHODS = ("sft", "dpo", "kto", "orpo", "reward", "grpo", "rloo", "multitask")
#: Methods whose model is a sequence classifier rather than a causal LM.
CLASSIFIER_METHODS = ("reward",)
DEFAULT_MAX_LENGTH: int = DatasetSpec.model_fields["maxLength"].default


def build(ctx: MethodContext) -> Trainer:
    method = ctx.spec.method
    if method not in METHODS:
        raise InvalidConfigError(
            f"method {method} is not supported by this trainer; supported: {', '.join(METHODS)}"
        )
    module = importlib.import_module(f"kubetune_trainer.methods.{method}")
    trainer: Trainer = module.build(ctx)
    ewc = ctx.spec.training.ewc
    if ewc is not None:
        from kubetune_trainer import ewc as elastic

        dataset = ctx.spec.dataset
        elastic.attach(
            trainer,
            ewc,
            ctx.tokenizer,
            seed=ctx.spec.training.seed,
            max_length=dataset.maxLength if dataset else DEFAULT_MAX_LENGTH,
        )
    return trainer


__all__ = ["CLASSIFIER_METHODS", "METHODS", "MethodContext", "build"]
