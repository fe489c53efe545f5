"""The two models compared: the base model, and the tuned model as it was published.

Both are loaded from files, not taken from the training process: what is evaluated is
exactly what was uploaded (and what ``kubetune eval --adapter URI`` loads later), the
result of a sharded (FSDP) run is whole on disk, and each model comes with its own
tokenizer (a tuned vocabulary extension is not the base model's). They are loaded the
way training loaded the base: the same precision and, for qlora, the same quantization,
so the comparison is between two models that differ only by the fine-tune. One model is
in memory at a time.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_contract.api.resolved import QloraAdapterSpec
from kubetune_trainer import adapters
from kubetune_trainer.errors import InvalidModelError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from kubetune_contract.api.resolved import ResolvedSpec

#: A PEFT adapter folder holds this file; full (or partial) fine-tunes hold config.json.
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class InferenceModel:
    model: PreTrainedModel | PeftModel
    tokenizer: PreTrainedTokenizerBase


def _load_kwargs(spec: ResolvedSpec) -> dict[str, Any]:
    import torch

    kwargs: dict[str, Any] = {"dtype": adapters.compute_dtype(spec.training.precision)}
    if isinstance(spec.adapter, QloraAdapterSpec):
        kwargs["quantization_config"] = adapters.quantization_config(spec.adapter.quantization)
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    return kwargs


def _tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    adapters.ensure_tokenizer_ready(tokenizer, folder)
    return tokenizer


def _causal_lm(folder: Path, kwargs: dict[str, Any]) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"cannot load the model in {folder}: {exc}") from exc


def load_base(model_dir: Path, spec: ResolvedSpec) -> InferenceModel:
    """The base model, as training loaded it."""
    return InferenceModel(_causal_lm(model_dir, _load_kwargs(spec)), _tokenizer(model_dir))


def load_tuned(model_dir: Path, result_dir: Path, spec: ResolvedSpec) -> InferenceModel:
    """The published result: base + adapter for PEFT adapters, the weights themselves for
    full and partial fine-tunes."""
    tokenizer = _tokenizer(result_dir)
    if not (result_dir / ADAPTER_CONFIG).is_file():
        return InferenceModel(_causal_lm(result_dir, _load_kwargs(spec)), tokenizer)
    from peft import PeftModel

    base = _causal_lm(model_dir, _load_kwargs(spec))
    if base.get_input_embeddings().num_embeddings != len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))  # adapter.newTokens
    try:
        model = PeftModel.from_pretrained(base, result_dir)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidModelError(f"cannot load the adapter in {result_dir}: {exc}") from exc
    return InferenceModel(model, tokenizer)


def free_memory() -> None:
    """Give a dropped model's memory back (to the GPU too) before the next one loads."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
