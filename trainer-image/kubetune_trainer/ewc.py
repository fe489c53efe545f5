"""Elastic weight consolidation (``training.ewc``): fine-tune without forgetting as much.

Before training, the diagonal of the Fisher information of every trainable parameter is
estimated on reference data (what must not be forgotten) as the mean squared gradient of
the per-example language-modelling loss. During training the loss gets the penalty
``strength * sum_i F_i (theta_i - theta*_i)^2`` (theta* the weights before training), so
weights that mattered for the reference data stay close to where they were, while the
others are free to learn the new task (Kirkpatrick et al., 2017).

The penalty is attached by wrapping the trainer's ``compute_loss``, which every TRL
trainer calls for its training loss, so it works with each causal-LM method. It is added
in training mode only: evaluation losses stay comparable with runs without EWC. With an
adapter the trainable parameters are the adapter's, so only they are anchored.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kubetune_contract.api.dataset import DatasetSpec
from kubetune_trainer.errors import InvalidConfigError, InvalidDataError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase, Trainer

    from kubetune_contract.api.training import EwcSpec

log = logging.getLogger(__name__)


def reference_texts(spec: EwcSpec, tokenizer: PreTrainedTokenizerBase, seed: int) -> list[str]:
    """Up to ``spec.samples`` reference rows as the text the model is trained to produce
    (conversations through the chat template), sampled with the job's seed."""
    from kubetune_trainer.data import prepare

    try:
        rows = list(prepare(DatasetSpec(train=spec.referenceDataset), "sft", seed).train)
    except InvalidDataError as exc:
        raise InvalidDataError(
            f"training.ewc.referenceDataset (read like sft data: conversations, "
            f"prompt/completion or text): {exc}"
        ) from exc
    random.Random(seed).shuffle(rows)
    texts = []
    for row in rows[: spec.samples]:
        if "text" in row and isinstance(row["text"], str):
            texts.append(row["text"])
            continue
        messages = row.get("messages") or [
            *_as_messages(row["prompt"], "user"),
            *_as_messages(row["completion"], "assistant"),
        ]
        if all(isinstance(m, dict) for m in messages) and tokenizer.chat_template is not None:
            texts.append(str(tokenizer.apply_chat_template(messages, tokenize=False)))
        else:
            texts.append("".join(str(m["content"]) for m in messages))
    return texts


def _as_messages(value: str | list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


def fisher_diagonal(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Mean over ``texts`` of the squared gradient of each trainable parameter.

    One example per backward pass: the Fisher is an expectation of squared per-example
    gradients, which a batch gradient (a mean of gradients, then squared) underestimates.
    """
    import torch

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it is
    for text in texts:
        batch = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
        batch = {k: v.to(device) for k, v in batch.items()}
        model.zero_grad(set_to_none=True)
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        for name, param in params.items():
            if param.grad is not None:
                fisher[name] += param.grad.detach().float() ** 2
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: f / max(len(texts), 1) for n, f in fisher.items()}


class EwcPenalty:
    """``strength * sum_i F_i (theta_i - theta*_i)^2`` over the anchored parameters.

    Holds the parameter tensors themselves, not names: the model the trainer passes to
    ``compute_loss`` may be wrapped (DDP, accelerate), the tensors are the same.
    """

    def __init__(
        self, model: torch.nn.Module, fisher: dict[str, torch.Tensor], strength: float
    ) -> None:
        self.strength = strength
        self.terms = [
            (param, fisher[name].to(param.device), param.detach().clone().float())
            for name, param in model.named_parameters()
            if name in fisher
        ]

    def __call__(self) -> torch.Tensor:
        parts = [(f * (p.float() - anchor) ** 2).sum() for p, f, anchor in self.terms]
        total: torch.Tensor = sum(parts[1:], parts[0])
        return self.strength * total


def attach(
    trainer: Trainer,
    spec: EwcSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
    max_length: int,
) -> EwcPenalty:
    """Estimate the Fisher on the reference data and add the penalty to ``trainer``'s
    training loss."""
    texts = reference_texts(spec, tokenizer, seed)
    model = trainer.model
    if model is None:
        raise InvalidConfigError("training.ewc needs a model built before training")
    fisher = fisher_diagonal(model, tokenizer, texts, max_length)
    if not fisher:
        raise InvalidConfigError("training.ewc: the model has no trainable parameters to anchor")
    penalty = EwcPenalty(model, fisher, float(spec.strength))
    log.info(
        "ewc: Fisher information from %d reference examples over %d tensors, strength %g",
        len(texts),
        len(penalty.terms),
        penalty.strength,
    )
    trainer.compute_loss = _with_penalty(trainer.compute_loss, penalty)  # type: ignore[method-assign]
    return penalty


def _with_penalty(compute_loss: Callable[..., Any], penalty: EwcPenalty) -> Callable[..., Any]:
    def wrapped(
        model: torch.nn.Module, inputs: Any, return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        result = compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        if not model.training:
            return result
        if return_outputs:
            loss, outputs = result
            return loss + penalty(), outputs
        return result + penalty()

    return wrapped
