"""Training methods, one module each; :func:`build` picks the module for ``spec.method``.

Modules are imported on demand so that a job pays only for the TRL trainer it uses. Each
module's ``build`` takes the context of its method's resolved spec
(:mod:`kubetune_contract.api.resolved`): the spec's ``method`` tag chose that type when
the config was parsed, so the module named by the tag gets the spec it expects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kubetune_trainer.methods.common import MethodContext

if TYPE_CHECKING:
    from transformers import Trainer

#: Methods whose model is a sequence classifier rather than a causal LM.
CLASSIFIER_METHODS = ("reward",)


def build(ctx: MethodContext[Any]) -> Trainer:
    method = ctx.spec.method
    module = importlib.import_module(f"kubetune_trainer.methods.{method}")
    trainer: Trainer = module.build(ctx)
    ewc = ctx.spec.training.ewc
    if ewc is not None:
        from kubetune_trainer import ewc as elastic

        elastic.attach(
            trainer,
            ewc,
            ctx.tokenizer,
            seed=ctx.spec.training.seed,
            max_length=ctx.dataset.maxLength,
        )
    return trainer


__all__ = ["CLASSIFIER_METHODS", "MethodContext", "build"]
