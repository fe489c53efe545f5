"""Training methods, one module each; :func:`build` picks the module for ``spec.method``.

Modules are imported on demand so that a job pays only for the TRL trainer it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from kubetune_trainer.errors import InvalidConfigError
from kubetune_trainer.methods.common import MethodContext

if TYPE_CHECKING:
    from transformers import Trainer

METHODS = ("sft", "dpo", "kto", "orpo", "reward", "grpo", "rloo")
#: Methods whose model is a sequence classifier rather than a causal LM.
CLASSIFIER_METHODS = ("reward",)


def build(ctx: MethodContext) -> Trainer:
    method = ctx.spec.method
    if method not in METHODS:
        raise InvalidConfigError(
            f"method {method} is not supported by this trainer; supported: {', '.join(METHODS)}"
        )
    module = importlib.import_module(f"kubetune_trainer.methods.{method}")
    trainer: Trainer = module.build(ctx)
    return trainer


__all__ = ["CLASSIFIER_METHODS", "METHODS", "MethodContext", "build"]
