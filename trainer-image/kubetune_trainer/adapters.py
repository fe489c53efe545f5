"""Load the base model and decide what trains: lora, qlora, full, partial, promptTuning.

Returns the model and, for PEFT adapters, the ``PeftConfig`` that the TRL trainer applies
itself (TRL wraps the model and, for k-bit models, prepares it; no
``prepare_model_for_kbit_training`` here). Incompatible choices are refused up front with
a message that says what to change, never silently rewritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_contract.api.adapter import LoraSpec, PromptTuningSpec, QuantizationSpec
from kubetune_trainer.errors import InvalidConfigError, InvalidModelError

if TYPE_CHECKING:
    import torch
    from peft import PeftConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from kubetune_contract.api.adapter import AdapterSpec
    from kubetune_contract.api.training import TrainingSpec


@dataclass
class LoadedModel:
    model: PreTrainedModel
    peft_config: PeftConfig | None


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype that ``training.precision`` asks for on this machine."""
    import torch

    if precision == "auto":
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def quantization_config(adapter: AdapterSpec) -> Any:
    """The bitsandbytes config of a qlora adapter (also used to evaluate its base model)."""
    import torch
    from transformers import BitsAndBytesConfig

    quant = adapter.quantization or QuantizationSpec()
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


def _lora(adapter: AdapterSpec, task: str, extra_modules: list[str]) -> PeftConfig:
    from peft import LoraConfig

    lora = adapter.lora or LoraSpec()
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


def _prompt_tuning(adapter: AdapterSpec, task: str, model_dir: Path) -> PeftConfig:
    from peft import PromptTuningConfig, PromptTuningInit

    spec = adapter.promptTuning or PromptTuningSpec()
    if spec.initText:
        return PromptTuningConfig(
            task_type=task,
            num_virtual_tokens=spec.virtualTokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=spec.initText,
            tokenizer_name_or_path=str(model_dir),
        )
    return PromptTuningConfig(task_type=task, num_virtual_tokens=spec.virtualTokens)


def _unfreeze(model: PreTrainedModel, adapter: AdapterSpec, extra_modules: list[str]) -> None:
    """``partial``: only parameters in the named layers or matching a pattern train."""
    partial = adapter.partial
    if partial is None or not (partial.layers or partial.patterns):
        raise InvalidConfigError(
            "adapter.type partial needs adapter.partial.layers and/or adapter.partial.patterns"
        )
    try:
        patterns = [re.compile(p) for p in partial.patterns]
    except re.error as exc:
        raise InvalidConfigError(f"adapter.partial.patterns: {exc}") from exc
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
    adapter: AdapterSpec,
    training: TrainingSpec,
    tokenizer: PreTrainedTokenizerBase,
    *,
    classifier: bool = False,
) -> LoadedModel:
    """Load the base model from ``model_dir`` for ``adapter``; extend its vocabulary if asked."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if adapter.newTokens and adapter.type == "promptTuning":
        raise InvalidConfigError(
            "adapter.newTokens can't be used with adapter.type promptTuning: prompt tuning "
            "trains only virtual tokens, so new embeddings would stay random; use lora"
        )
    kwargs: dict[str, Any] = {"dtype": compute_dtype(training.precision)}
    if adapter.type == "qlora":
        kwargs["quantization_config"] = quantization_config(adapter)
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
    if adapter.type in ("lora", "qlora"):
        return LoadedModel(model, _lora(adapter, task, extra_modules))
    if adapter.type == "promptTuning":
        return LoadedModel(model, _prompt_tuning(adapter, task, model_dir))
    if adapter.type == "partial":
        _unfreeze(model, adapter, extra_modules)
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
