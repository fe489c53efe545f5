"""Batched text generation: what self-critique and evaluation both do with a model.

Decoder-only models continue from the right edge of their input, so batches are padded
on the left; the tokenizer's padding side is put back afterwards (training pads on the
right). Temperature 0 is greedy decoding: the same inputs give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Sampling:
    """How to generate: length, randomness and batch size."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8

    def kwargs(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        """``generate()`` keyword arguments."""
        out: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id,
            # Training may switch the cache off (gradient checkpointing); generation needs it.
            "use_cache": True,
        }
        if self.temperature > 0:
            out.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            out["do_sample"] = False
        return out


def generate(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    sampling: Sampling,
    *,
    after_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """The continuation of every text (special tokens dropped, whitespace stripped).

    ``texts`` are model inputs as they are, chat template already applied where wanted.
    ``after_batch`` is called with the number of texts done after every batch (progress,
    and the place a caller may raise to stop early).
    """
    import torch

    out: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    kwargs = sampling.kwargs(tokenizer)
    try:
        for start in range(0, len(texts), sampling.batch_size):
            batch = tokenizer(
                list(texts[start : start + sampling.batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(model.device)
            with torch.no_grad():
                # transformers types generate() through nn.Module.__getattr__.
                tokens = model.generate(**batch, **kwargs)  # type: ignore[operator]
            new = tokens[:, batch["input_ids"].shape[1] :]
            out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
            if after_batch is not None:
                after_batch(len(out))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out
