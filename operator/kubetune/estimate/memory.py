"""Peak GPU memory of one training process, by component.

Conventions (bytes per value): frozen base weights are stored in the compute dtype
(2 for bf16/fp16, 4 for fp32), or 4-bit/8-bit for qlora (embeddings and the output head
stay unquantized, as bitsandbytes leaves them); adapter weights (LoRA, prompt tuning)
are fp32. Every trainable value also has a gradient of its own dtype and optimizer state:
AdamW keeps two fp32 moments (8 bytes), 8-bit AdamW two 1-byte moments, Adafactor about
one fp32 value per row and column (approximated as 1 byte per value), SGD none.

Activations follow a Llama block (SDPA attention, no dropout): per token and layer the
backward pass needs about ``7h + 2kv + 4i`` values (norm outputs, q/k/v, attention and
MLP intermediates, residuals). With gradient checkpointing only each layer's input
(``h`` values) is kept, plus one layer's full set while it is recomputed. The loss needs
the logits in the compute dtype, their fp32 upcast and its gradient: ``vocab x 10``
bytes per token. A fixed 1 GiB covers the CUDA context and kernels, and 10% is added for
allocator fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.estimate.hardware import precision
from kubetune.estimate.shapes import ModelShape
from kubetune_contract.api.resolved import (
    LoraAdapterSpec,
    PartialAdapterSpec,
    PromptTuningAdapterSpec,
    QloraAdapterSpec,
    resolve_adapter,
)
from kubetune_contract.api.spec import FineTuneJobSpec

GIB = 1024**3
#: ``training.batchSize: auto`` is estimated at one example per device, the smallest batch
#: a run needs; the trainer finds the largest batch that fits on the GPU at run time.
AUTO_BATCH_ESTIMATE = 1
CUDA_CONTEXT_BYTES = 1 * GIB
FRAGMENTATION = 0.10

_OPTIMIZER_STATE_BYTES = {
    "adamw": 8.0,
    "adamwFused": 8.0,
    "adamw8bit": 2.0,
    "pagedAdamw8bit": 2.0,
    "adafactor": 1.0,
    "sgd": 0.0,
}
_LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def compute_bytes(spec: FineTuneJobSpec) -> int:
    """Bytes per value of the compute dtype the trainer uses for this spec (``auto`` on an
    unknown GPU: a bf16-capable one, the common case)."""
    return 4 if precision(spec) == "fp32" else 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one process, in bytes, by component."""

    parameters: int
    trainableParameters: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    overhead: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.activations
            + self.logits
            + self.overhead
        )


def lora_parameters(shape: ModelShape, rank: int, targets: list[str]) -> int:
    """Adapter weights: ``rank x (in + out)`` for every targeted linear of every block."""
    wanted = set(_LINEAR_NAMES) if "all-linear" in targets else set(targets)
    per_block = sum(
        rank * (fan_in + fan_out)
        for name, (fan_in, fan_out) in zip(_LINEAR_NAMES, shape.linear_shapes(), strict=True)
        if name in wanted
    )
    return shape.layers * per_block


def _embedding_parameters(shape: ModelShape) -> int:
    return shape.vocab * shape.hidden * (1 if shape.tiedEmbeddings else 2)


def _frozen_weight_bytes(shape: ModelShape, spec: FineTuneJobSpec) -> float:
    """The base model's weights as stored during training."""
    dtype = compute_bytes(spec)
    adapter = resolve_adapter(spec.adapter)
    if not isinstance(adapter, QloraAdapterSpec):
        return shape.parameters * dtype
    bits, double = adapter.quantization.bits, adapter.quantization.doubleQuant
    # Blocks of 64 weights share an fp32 scale (0.5 bit/param), 8-bit with double quant.
    per_value = bits / 8 + (0.127 if double else 0.5) / 8
    embeddings = _embedding_parameters(shape)
    return (shape.parameters - embeddings) * per_value + embeddings * dtype


def _trainable(shape: ModelShape, spec: FineTuneJobSpec) -> tuple[int, int]:
    """(trainable values that are new fp32 adapter weights, trainable base weights).

    The adapter is resolved here, not taken resolved, because the pod's memory request is
    estimated from the spec as written (:func:`kubetune.estimate.host.memory_request`)."""
    adapter = resolve_adapter(spec.adapter)
    new_token_params = _embedding_parameters(shape) if adapter.newTokens else 0
    if isinstance(adapter, LoraAdapterSpec | QloraAdapterSpec):
        lora = adapter.lora
        return lora_parameters(shape, lora.rank, lora.targetModules), new_token_params
    if isinstance(adapter, PromptTuningAdapterSpec):
        return adapter.promptTuning.virtualTokens * shape.hidden, 0
    if isinstance(adapter, PartialAdapterSpec):
        layers = len(adapter.partial.layers)
        return 0, layers * shape.block_parameters + new_token_params
    return 0, shape.parameters


def activation_bytes(shape: ModelShape, tokens: int, dtype: int, checkpointing: bool) -> int:
    """Activations kept for the backward pass of ``tokens`` tokens (see the module doc)."""
    kv = shape.kvHeads * shape.head_dim
    per_layer = tokens * (7 * shape.hidden + 2 * kv + 4 * shape.intermediate) * dtype
    if checkpointing:
        return shape.layers * tokens * shape.hidden * dtype + per_layer
    return shape.layers * per_layer


def batch_size(spec: FineTuneJobSpec) -> int:
    """The per-device batch the estimate assumes (see :data:`AUTO_BATCH_ESTIMATE`)."""
    size = spec.training.batchSize
    return size if isinstance(size, int) else AUTO_BATCH_ESTIMATE


def estimate_memory(
    shape: ModelShape, spec: FineTuneJobSpec, *, shards: int = 1, include_overhead: bool = True
) -> MemoryEstimate:
    """Peak memory of one training process for ``spec`` on a model of ``shape``.

    ``shards`` > 1 divides full-model weights, gradients and optimizer state (FSDP full
    sharding over that many processes); adapters are replicated.
    """
    dtype = compute_bytes(spec)
    adapter_values, base_trainable = _trainable(shape, spec)
    optimizer_bytes = _OPTIMIZER_STATE_BYTES[spec.training.optimizer]
    shard = shards if spec.adapter.type == "full" else 1
    weights = _frozen_weight_bytes(shape, spec) / shard + adapter_values * 4
    gradients = base_trainable * dtype / shard + adapter_values * 4
    optimizer = (base_trainable / shard + adapter_values) * optimizer_bytes
    max_length = spec.dataset.maxLength if spec.dataset else 512
    tokens = batch_size(spec) * max_length
    activations = activation_bytes(shape, tokens, dtype, spec.training.gradientCheckpointing)
    logits = tokens * shape.vocab * (dtype + 8)
    subtotal = weights + gradients + optimizer + activations + logits
    overhead = CUDA_CONTEXT_BYTES + FRAGMENTATION * subtotal if include_overhead else 0
    return MemoryEstimate(
        parameters=shape.parameters,
        trainableParameters=adapter_values + base_trainable,
        weights=round(weights),
        gradients=round(gradients),
        optimizer=round(optimizer),
        activations=round(activations),
        logits=round(logits),
        overhead=round(overhead),
    )
