"""What grpo and rloo share: sampling settings and rewards, mapped onto TRL's configs."""

from __future__ import annotations

from typing import Any

from kubetune_contract.api.methods import OnlineRlSpec
from kubetune_trainer import rewards
from kubetune_trainer.methods.common import MethodContext, training_arguments


def config_and_rewards(
    ctx: MethodContext[Any], settings: OnlineRlSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config kwargs, trainer kwargs) for GRPOConfig/RLOOConfig and their trainers."""
    built = rewards.build(ctx.spec.reward, ctx.spec.training)
    config = {
        **training_arguments(ctx),
        "num_generations": settings.numGenerations,
        "max_completion_length": settings.maxCompletionLength,
        "temperature": float(settings.temperature),
        "beta": float(settings.beta),
        "reward_weights": built.weights,
    }
    trainer = {
        **ctx.trainer_kwargs(),
        "reward_funcs": built.functions,
        "reward_processing_classes": built.processing_classes,
    }
    return config, trainer
