"""What is trained: an adapter (LoRA, QLoRA, prompt tuning) or the weights themselves."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kubetune_contract.api.base import ApiModel, Decimal, ShortString
from kubetune_contract.api.rules import Rule, fraction_below_one, is_regex
from kubetune_contract.api.unions import block_only_with, block_required

AdapterType = Literal["lora", "qlora", "full", "partial", "promptTuning"]


class LoraSpec(ApiModel):
    """Low-rank adapter settings (used by lora and qlora)."""

    rank: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=16, description="LoRA rank r: the width of the low-rank update."
    )
    alpha: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=32, description="LoRA alpha: the update is scaled by alpha / rank."
    )
    dropout: Decimal = Field(
        default="0.05", description='Dropout on the LoRA input, a fraction in [0, 1), e.g. "0.05".'
    )
    targetModules: list[ShortString] = Field(
        default_factory=lambda: ["all-linear"],
        max_length=64,
        description='Module names (or suffixes) that get adapters; "all-linear" targets every '
        "linear layer except the output head.",
    )

    rules = (fraction_below_one("dropout", allow_zero=True),)


class QuantizationSpec(ApiModel):
    """bitsandbytes quantization of the frozen base model (qlora only)."""

    bits: Literal[4, 8] = Field(default=4, description="Bits per base-model weight: 4 or 8.")
    quantType: Literal["nf4", "fp4"] = Field(
        default="nf4", description="4-bit data type: nf4 (NormalFloat, the QLoRA default) or fp4."
    )
    doubleQuant: bool = Field(
        default=True, description="Quantize the quantization constants too (saves ~0.4 bit/param)."
    )
    computeDtype: Literal["bfloat16", "float16", "float32"] = Field(
        default="bfloat16", description="Dtype the de-quantized weights are computed in."
    )
    allowCpu: bool = Field(
        default=False,
        description="Allow qlora without a GPU (resources.gpus: 0). bitsandbytes runs 4-bit on "
        "x86-64 CPUs, very slowly: for tests and smoke runs only.",
    )


class PartialSpec(ApiModel):
    """Which parameters train when only part of the model is unfrozen."""

    layers: list[Annotated[int, Field(ge=0, le=1023)]] = Field(
        default_factory=list,
        max_length=256,
        description="Indices of transformer layers to unfreeze (0 is the first layer).",
    )
    patterns: list[ShortString] = Field(
        default_factory=list,
        max_length=64,
        description="Regular expressions over parameter names; matching parameters train "
        '(e.g. "lm_head", "norm").',
    )

    rules = (
        Rule(
            field="layers",
            message="partial needs at least one entry in layers or patterns",
            check=lambda p: bool(p.layers or p.patterns),
            cel="(has(self.layers) && size(self.layers) > 0) || "
            "(has(self.patterns) && size(self.patterns) > 0)",
            reason="FieldValueRequired",
        ),
        Rule(
            field="patterns",
            message="every entry of patterns must be a valid regular expression",
            check=lambda p: all(is_regex(pattern) for pattern in p.patterns),
        ),
    )


class PromptTuningSpec(ApiModel):
    """Soft prompt tuning: only virtual token embeddings train."""

    virtualTokens: Annotated[int, Field(ge=1, le=512)] = Field(
        default=20, description="Number of trainable virtual tokens prepended to every input."
    )
    initText: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None,
        description="Initialise the virtual tokens from this text's embeddings "
        "(default: random initialisation).",
    )


class AdapterSpec(ApiModel):
    """The adapter type and its settings, one block per type (see
    :mod:`kubetune_contract.api.unions`)."""

    type: AdapterType = Field(
        default="qlora",
        description="lora: low-rank adapters on a frozen model; qlora: lora on a 4/8-bit "
        "quantized model (needs a GPU); full: every weight trains; partial: only the layers or "
        "parameters named in partial; promptTuning: only virtual token embeddings.",
    )
    lora: LoraSpec | None = Field(
        default=None, description="LoRA settings (lora and qlora; defaults apply when omitted)."
    )
    quantization: QuantizationSpec | None = Field(
        default=None, description="Quantization settings (qlora only; defaults apply when omitted)."
    )
    partial: PartialSpec | None = Field(
        default=None, description="What to unfreeze (required for partial)."
    )
    promptTuning: PromptTuningSpec | None = Field(
        default=None, description="Prompt tuning settings (promptTuning only)."
    )
    newTokens: list[ShortString] = Field(
        default_factory=list,
        max_length=1024,
        description="Tokens to add to the vocabulary (e.g. special tags); the embeddings and "
        "output head are resized and trained alongside the adapter.",
    )

    rules = (
        block_only_with("lora", "type", ("lora", "qlora")),
        block_only_with("quantization", "type", ("qlora",)),
        block_only_with("promptTuning", "type", ("promptTuning",)),
        block_required("partial", "type", "partial", "layers and/or patterns to unfreeze"),
        block_only_with("partial", "type", ("partial",)),
        Rule(
            field="newTokens",
            message="newTokens can't be combined with type promptTuning (prompt tuning trains "
            "no embeddings)",
            check=lambda a: not (a.newTokens and a.type == "promptTuning"),
            cel="!has(self.newTokens) || size(self.newTokens) == 0 || self.type != 'promptTuning'",
            reason="FieldValueForbidden",
        ),
    )
