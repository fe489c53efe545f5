"""Load the base model and decide what trains: lora, qlora, full, partial, promptTuning.

Returns the model and, for PEFT adapters, the ``PeftConfig`` that the TRL trainer applies
itself (TRL wraps the model and, for k-bit models, prepares it; no
``prepare_model_for_kbit_training`` here). The adapter arrives resolved (its blocks filled
by render, its combinations checked by the schema); what is refused here is what only
this machine or this model can tell: qlora without a GPU, partial patterns that match no
parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubetune_contract.api.resolved import (
    LoraAdapterSpec,
    PartialAdapterSpec,
    PromptTuningAdapterSpec,
    QloraAdapterSpec,
)
from kubetune_trainer.errors import InvalidConfigError, InvalidModelError

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from kubetune_contract.api.adapter import (
        LoraSpec,
        PartialSpec,
        PromptTuningSpec,
        QuantizationSpec,
    )
    from kubetune_contract.api.resolved import ResolvedAdapter
    from kubetune_contract.api.training import Precision, TrainingSpec

DevicePrecision = Literal["bf16", "fp16", "fp32"]


@dataclass
class LoadedModel:
    model: PreTrainedModel
    peft_config: PeftConfig | None


def device_precision(precision: Precision) -> DevicePrecision:
    """``training.precision`` on this machine. Render decided ``auto`` wherever the spec
    names the hardware; what is left is a GPU known only here: bf16 where it supports it,
    else fp32. The one place the trainer decides it."""
    import torch

    if precision != "auto":
        return precision
    cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return "bf16" if cuda_bf16 else "fp32"


def compute_dtype(precision: Precision) -> torch.dtype:
    """The dtype that ``training.precision`` asks for on this machine."""
    import torch

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    return dtypes[device_precision(precision)]


def quantization_config(quant: QuantizationSpec) -> Any:
    """The bitsandbytes config of a qlora adapter (also used to evaluate its base model)."""
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available() and not quant.allowCpu:
        raise InvalidConfigError(
            "adapter.type qlora needs a CUDA GPU and none is visible; run on a GPU node "
            "(resources.gpus >= 1) or, for tests only, set adapter.quantization.allowCpu: true"
        )
    dtype = getattr(torch, quant.computeDtype)
    if quant.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quantType,
        bnb_4bit_use_double_quant=quant.doubleQuant,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_quant_storage=dtype,
    )


def _module_name(model: PreTrainedModel, module: Any) -> str:
    return next(name.rsplit(".", 1)[-1] for name, m in model.named_modules() if m is module)


def _embedding_modules(model: PreTrainedModel) -> list[str]:
    """Names of the input embedding and output head, which new tokens must train."""
    names = [_module_name(model, model.get_input_embeddings())]
    head = model.get_output_embeddings()
    if head is not None:
        names.append(_module_name(model, head))
    return names


def _lora(lora: LoraSpec, task: str, extra_modules: list[str]) -> PeftConfig:
    from peft import LoraConfig

    targets: str | list[str] = (
        "all-linear" if lora.targetModules == ["all-linear"] else list(lora.targetModules)
    )
    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=float(lora.dropout),
        target_modules=targets,
        modules_to_save=extra_modules or None,
        task_type=task,
    )


def _prompt_tuning(spec: PromptTuningSpec, task: str, model_dir: Path) -> PeftConfig:
    from peft import PromptTuningConfig, PromptTuningInit

    if spec.initText:
        return PromptTuningConfig(
            task_type=task,
            num_virtual_tokens=spec.virtualTokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=spec.initText,
            tokenizer_name_or_path=str(model_dir),
        )
    return PromptTuningConfig(task_type=task, num_virtual_tokens=spec.virtualTokens)


def _unfreeze(model: PreTrainedModel, partial: PartialSpec, extra_modules: list[str]) -> None:
    """``partial``: only parameters in the named layers or matching a pattern train (the
    schema guarantees at least one of them, each pattern a valid regular expression)."""
    patterns = [re.compile(p) for p in partial.patterns]
    patterns += [re.compile(rf"(^|\.){re.escape(name)}\.") for name in extra_modules]
    layers = {str(i) for i in partial.layers}
    layer_re = re.compile(r"\.layers\.(\d+)\.")
    trained = 0
    for name, parameter in model.named_parameters():
        match = layer_re.search(name)
        train = (match is not None and match.group(1) in layers) or any(
            p.search(name) for p in patterns
        )
        parameter.requires_grad_(train)
        trained += int(train)
    if trained == 0:
        sample = ", ".join(name for name, _ in list(model.named_parameters())[:6])
        raise InvalidConfigError(
            "adapter.partial matches no parameter of this model; parameter names look like: "
            f"{sample}, ..."
        )


def load(
    model_dir: Path,
    adapter: ResolvedAdapter,
    training: TrainingSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    classifier: bool = False,
) -> LoadedModel:
    """Load the base model from ``model_dir`` for ``adapter``; extend its vocabulary if asked."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {"dtype": compute_dtype(training.precision)}
    if isinstance(adapter, QloraAdapterSpec):
        kwargs["quantization_config"] = quantization_config(adapter.quantization)
    if classifier:
        kwargs["num_labels"] = 1
    loader = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
    try:
        model = loader.from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"cannot load the model in {model_dir}: {exc}") from exc
    if classifier and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    extra_modules: list[str] = []
    if adapter.newTokens:
        added = tokenizer.add_tokens(list(adapter.newTokens))
        if added:
            model.resize_token_embeddings(len(tokenizer))
        extra_modules = _embedding_modules(model)

    task = "SEQ_CLS" if classifier else "CAUSAL_LM"
    if isinstance(adapter, LoraAdapterSpec | QloraAdapterSpec):
        return LoadedModel(model, _lora(adapter.lora, task, extra_modules))
    if isinstance(adapter, PromptTuningAdapterSpec):
        return LoadedModel(model, _prompt_tuning(adapter.promptTuning, task, model_dir))
    if isinstance(adapter, PartialAdapterSpec):
        _unfreeze(model, adapter.partial, extra_modules)
    return LoadedModel(model, None)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, for the manifest and the log."""
    total = trainable = 0
    for parameter in model.parameters():
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable, total


def ensure_tokenizer_ready(tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> None:
    """Batches need a pad token; base models often ship without one."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise InvalidModelError(f"the tokenizer in {model_dir} has neither pad nor eos token")
        tokenizer.pad_token = tokenizer.eos_token
