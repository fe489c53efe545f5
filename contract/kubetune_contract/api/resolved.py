"""The resolved spec a trainer runs: the user's spec with every defaultable block filled in.

A FineTuneJob leaves blocks out when their defaults will do (``dpo``, ``adapter.lora``,
``adapter.quantization``, ...), so in :class:`~kubetune_contract.api.spec.FineTuneJobSpec`
they are optional. Render fills them in once, from the same models' defaults; these
narrowed types say so, so the trainer reads ``spec.dpo.beta`` with no ``or DpoSpec()``
and mypy checks that it needs none.

Both unions are tagged: ``spec.method`` picks the job type, ``adapter.type`` the adapter
type, and each type makes required exactly the blocks its tag needs. A config rendered
by an older operator that did not fill a block fails to parse with the block's path
instead of running with defaults nobody recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Tag, TypeAdapter

from kubetune_contract.api.adapter import (
    AdapterSpec,
    LoraSpec,
    PartialSpec,
    PromptTuningSpec,
    QuantizationSpec,
)
from kubetune_contract.api.methods import (
    METHOD_BLOCKS,
    DpoSpec,
    KtoSpec,
    MultitaskSpec,
    OnlineRlSpec,
    OrpoSpec,
    SftSpec,
)
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.training import Precision

#: The blocks each adapter type reads that may be omitted (``partial`` has no defaults).
ADAPTER_BLOCKS: dict[str, tuple[str, ...]] = {
    "lora": ("lora",),
    "qlora": ("lora", "quantization"),
    "promptTuning": ("promptTuning",),
}


class LoraAdapterSpec(AdapterSpec):
    type: Literal["lora"]
    lora: LoraSpec


class QloraAdapterSpec(AdapterSpec):
    type: Literal["qlora"]
    lora: LoraSpec
    quantization: QuantizationSpec


class FullAdapterSpec(AdapterSpec):
    type: Literal["full"]


class PartialAdapterSpec(AdapterSpec):
    type: Literal["partial"]
    partial: PartialSpec


class PromptTuningAdapterSpec(AdapterSpec):
    type: Literal["promptTuning"]
    promptTuning: PromptTuningSpec


def _member_by(field: str, suffix: str) -> Callable[[Any], str | None]:
    """The discriminator of a union tagged by ``field``: the member class's name, the tag
    capitalized plus ``suffix`` (``sft`` -> ``SftJobSpec``).

    Why not ``Field(discriminator=field)``: an error location then holds the tag's value
    (``spec.sft.training.learningRate``), which reads like the block of the same name. A
    class name is a union member to :func:`~kubetune_contract.api.errors.field_errors`,
    which drops it from the path: ``spec.training.learningRate``.
    """

    def member(value: Any) -> str | None:
        tag = value.get(field) if isinstance(value, dict) else getattr(value, field, None)
        return f"{tag[:1].upper()}{tag[1:]}{suffix}" if isinstance(tag, str) else None

    return member


ResolvedAdapter = Annotated[
    Annotated[LoraAdapterSpec, Tag("LoraAdapterSpec")]
    | Annotated[QloraAdapterSpec, Tag("QloraAdapterSpec")]
    | Annotated[FullAdapterSpec, Tag("FullAdapterSpec")]
    | Annotated[PartialAdapterSpec, Tag("PartialAdapterSpec")]
    | Annotated[PromptTuningAdapterSpec, Tag("PromptTuningAdapterSpec")],
    Discriminator(_member_by("type", "AdapterSpec")),
]


class _ResolvedJobSpec(FineTuneJobSpec):
    """What every method's resolved spec shares: the adapter with its blocks filled."""

    adapter: ResolvedAdapter


class SftJobSpec(_ResolvedJobSpec):
    method: Literal["sft"]
    sft: SftSpec


class DpoJobSpec(_ResolvedJobSpec):
    method: Literal["dpo"]
    dpo: DpoSpec


class KtoJobSpec(_ResolvedJobSpec):
    method: Literal["kto"]
    kto: KtoSpec


class OrpoJobSpec(_ResolvedJobSpec):
    method: Literal["orpo"]
    orpo: OrpoSpec


class RewardJobSpec(_ResolvedJobSpec):
    method: Literal["reward"]


class GrpoJobSpec(_ResolvedJobSpec):
    method: Literal["grpo"]
    grpo: OnlineRlSpec


class RlooJobSpec(_ResolvedJobSpec):
    method: Literal["rloo"]
    rloo: OnlineRlSpec


class MultitaskJobSpec(_ResolvedJobSpec):
    method: Literal["multitask"]
    multitask: MultitaskSpec


ResolvedSpec = Annotated[
    Annotated[SftJobSpec, Tag("SftJobSpec")]
    | Annotated[DpoJobSpec, Tag("DpoJobSpec")]
    | Annotated[KtoJobSpec, Tag("KtoJobSpec")]
    | Annotated[OrpoJobSpec, Tag("OrpoJobSpec")]
    | Annotated[RewardJobSpec, Tag("RewardJobSpec")]
    | Annotated[GrpoJobSpec, Tag("GrpoJobSpec")]
    | Annotated[RlooJobSpec, Tag("RlooJobSpec")]
    | Annotated[MultitaskJobSpec, Tag("MultitaskJobSpec")],
    Discriminator(_member_by("method", "JobSpec")),
]

_ADAPTER: TypeAdapter[ResolvedAdapter] = TypeAdapter(ResolvedAdapter)
_SPEC: TypeAdapter[ResolvedSpec] = TypeAdapter(ResolvedSpec)


def _adapter_document(adapter: AdapterSpec) -> dict[str, object]:
    """The adapter as JSON with its omitted blocks as ``{}``: validation then fills them
    from their models' defaults, the one place those are written."""
    document = adapter.model_dump(mode="json", exclude_none=True)
    for block in ADAPTER_BLOCKS.get(adapter.type, ()):
        document.setdefault(block, {})
    return document


def resolve_adapter(adapter: AdapterSpec) -> ResolvedAdapter:
    """``adapter`` with the blocks its type reads filled in."""
    return _ADAPTER.validate_python(_adapter_document(adapter))


def resolve(spec: FineTuneJobSpec, precision: Precision) -> ResolvedSpec:
    """``spec`` with the blocks its method and adapter type read filled in, and
    ``training.precision`` set to ``precision`` (what render made of ``auto``)."""
    document = spec.model_dump(mode="json", exclude_none=True)
    document["adapter"] = _adapter_document(spec.adapter)
    if spec.method in METHOD_BLOCKS:
        document.setdefault(spec.method, {})
    document["training"]["precision"] = precision
    return _SPEC.validate_python(document)
