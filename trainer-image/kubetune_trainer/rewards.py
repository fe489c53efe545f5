"""Rewards for grpo/rloo: built-in functions and a reward model from any model source.

TRL calls each reward function as ``f(prompts=..., completions=..., completion_ids=...,
trainer_state=..., **dataset_columns) -> list[float]``. Completions are strings for plain
prompts and message lists for conversational prompts; both are reduced to text here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetune_trainer.errors import InvalidConfigError, InvalidDataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from kubetune_contract.api.methods import RewardFunction, RewardSpec
    from kubetune_contract.api.sources import ModelSource
    from kubetune_contract.api.training import TrainingSpec

RewardCallable = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content", "")) for message in completion)


def exact_match(column: str) -> RewardCallable:
    """1.0 when the stripped completion equals the row's reference answer, else 0.0."""

    def reward(completions: list[Any], **columns: Any) -> list[float]:
        if column not in columns:
            raise InvalidDataError(
                f"reward exactMatch: referenceColumn {column!r} is not a dataset column; "
                f"columns passed to rewards: {', '.join(sorted(columns)) or 'none'}"
            )
        references = columns[column]
        return [
            float(completion_text(c).strip() == str(ref).strip())
            for c, ref in zip(completions, references, strict=True)
        ]

    reward.__name__ = f"exact_match_{column}"
    return reward


def format_regex(pattern: str) -> RewardCallable:
    """1.0 when the completion matches ``pattern`` (``re.search``), else 0.0."""
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise InvalidConfigError(f"reward formatRegex: invalid pattern {pattern!r}: {exc}") from exc

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [float(compiled.search(completion_text(c)) is not None) for c in completions]

    reward.__name__ = "format_regex"
    return reward


def length_penalty(target: int) -> RewardCallable:
    """Minus the relative distance from ``target`` characters, clipped to [-1, 0]."""

    def reward(completions: list[Any], **_: Any) -> list[float]:
        return [-min(1.0, abs(len(completion_text(c)) - target) / target) for c in completions]

    reward.__name__ = "length_penalty"
    return reward


def _function(spec: RewardFunction) -> RewardCallable:
    if spec.type == "exactMatch" and spec.exactMatch is not None:
        return exact_match(spec.exactMatch.referenceColumn)
    if spec.type == "formatRegex" and spec.formatRegex is not None:
        return format_regex(spec.formatRegex.pattern)
    if spec.type == "lengthPenalty" and spec.lengthPenalty is not None:
        return length_penalty(spec.lengthPenalty.targetLength)
    raise InvalidConfigError(f"reward {spec.type} needs the {spec.type} block")


@dataclass
class Rewards:
    """What GRPOTrainer/RLOOTrainer take: functions and models, their tokenizers, weights."""

    functions: list[RewardCallable | PreTrainedModel]
    processing_classes: list[PreTrainedTokenizerBase | None]
    weights: list[float]


def build(spec: RewardSpec | None, training: TrainingSpec) -> Rewards:
    """Rewards from the spec: the reward model first (if any), then the functions."""
    if spec is None or (spec.model is None and not spec.functions):
        raise InvalidConfigError("methods grpo and rloo need reward.model or reward.functions")
    rewards = Rewards([], [], [])
    if spec.model is not None:
        model, tokenizer = load_reward_model(spec.model, training)
        rewards.functions.append(model)
        rewards.processing_classes.append(tokenizer)
        rewards.weights.append(1.0)
    for function in spec.functions:
        rewards.functions.append(_function(function))
        rewards.processing_classes.append(None)
        rewards.weights.append(float(function.weight))
    return rewards


def load_reward_model(source: ModelSource, training: TrainingSpec) -> tuple[Any, Any]:
    """A sequence classifier with one label, such as a reward job's ``merged/`` output: the
    reward of grpo/rloo, and the judge of the evaluation's rewardScore and winRate.

    Resolved like ``spec.model`` (revision included); its ``credentialsSecret`` is mounted
    by the operator with the job's other credential Secrets, where the source clients
    look them up."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from kubetune_trainer.adapters import compute_dtype, ensure_tokenizer_ready
    from kubetune_trainer.sources import resolve_model

    folder = resolve_model(source.uri, source.revision, classifier=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ensure_tokenizer_ready(tokenizer, folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, dtype=compute_dtype(training.precision)
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
