"""The whole estimate for one job: memory per GPU, fit, time and cost per GPU product."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubetune.estimate import host
from kubetune.estimate.hardware import GPUS, Gpu, tokens_per_second
from kubetune.estimate.memory import (
    AUTO_BATCH_ESTIMATE,
    GIB,
    MemoryEstimate,
    batch_size,
    estimate_memory,
)
from kubetune.estimate.shapes import ModelShape
from kubetune_contract.api.spec import FineTuneJobSpec

#: A rough characters-per-token ratio of BPE tokenizers on English text and code.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class GpuRow:
    gpu: Gpu
    fits: bool
    tokensPerSecond: float
    hours: float | None
    cost: float | None


@dataclass(frozen=True)
class Estimate:
    memory: MemoryEstimate
    trainingTokens: int | None
    rows: list[GpuRow]
    requested: str | None
    batchSizeAuto: bool = False
    podCpu: str = ""
    """CPU request of each pod: resources.cpu, else derived (:mod:`.host`)."""
    podMemory: str = ""
    """Memory request of each pod: resources.memory, else derived."""
    podMemoryLimit: str = ""
    """Memory limit of each pod: resources.memory, else the request plus sharedMemory."""

    @property
    def requested_fits(self) -> bool | None:
        for row in self.rows:
            if row.gpu.product == self.requested:
                return row.fits
        return None


def dataset_tokens_from_file(path: Path) -> int:
    """Approximate tokens in a local data file (or folder of files) from its size."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) // CHARS_PER_TOKEN


def training_tokens(spec: FineTuneJobSpec, dataset_tokens: int | None) -> int | None:
    """Tokens the run processes: from maxSteps, or epochs x dataset tokens when known."""
    training = spec.training
    if training.maxSteps is not None:
        devices = max(spec.resources.gpus, 1) * spec.resources.nodes
        max_length = spec.dataset.maxLength if spec.dataset else 512
        per_step = batch_size(spec) * training.gradientAccumulationSteps * devices
        return training.maxSteps * per_step * max_length
    if dataset_tokens is None:
        return None
    return dataset_tokens * (training.epochs or 1)


def estimate(
    shape: ModelShape,
    spec: FineTuneJobSpec,
    *,
    dataset_tokens: int | None = None,
    prices: dict[str, float] | None = None,
) -> Estimate:
    """Memory, fit, throughput, time and (with prices, USD per GPU-hour) cost."""
    devices = max(spec.resources.gpus, 1) * spec.resources.nodes
    memory = estimate_memory(shape, spec, shards=devices)
    tokens = training_tokens(spec, dataset_tokens)
    rows = []
    for gpu in GPUS.values():
        speed = tokens_per_second(shape, spec, gpu)
        hours = tokens / speed / 3600 if tokens is not None else None
        price = (prices or {}).get(gpu.product)
        cost = hours * devices * price if hours is not None and price is not None else None
        rows.append(GpuRow(gpu, memory.total <= gpu.memoryGiB * GIB, speed, hours, cost))
    auto = spec.training.batchSize == "auto"
    return Estimate(
        memory,
        tokens,
        rows,
        spec.resources.gpuType,
        batchSizeAuto=auto,
        podCpu=spec.resources.cpu or host.cpu_request(spec),
        podMemory=spec.resources.memory or host.memory_request(spec),
        podMemoryLimit=spec.resources.memory or host.memory_limit(spec),
    )


def _gib(value: int) -> str:
    return f"{value / GIB:.1f}"


def _duration(hours: float) -> str:
    seconds = round(hours * 3600)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def render(estimate: Estimate, model_uri: str) -> str:
    """The text ``kubetune estimate`` prints."""
    m = estimate.memory
    lines = [
        f"model: {model_uri} ({m.parameters / 1e9:.2f} B parameters, "
        f"{m.trainableParameters / 1e6:.1f} M trainable)",
        f"memory per GPU (GiB): weights {_gib(m.weights)}, gradients {_gib(m.gradients)}, "
        f"optimizer {_gib(m.optimizer)}, activations {_gib(m.activations)}, "
        f"logits {_gib(m.logits)}, overhead {_gib(m.overhead)}; total {_gib(m.total)}",
    ]
    lines.append(
        f"per pod (node): cpu {estimate.podCpu}, host memory {estimate.podMemory} "
        f"(requests), memory limit {estimate.podMemoryLimit}"
    )
    if estimate.batchSizeAuto:
        lines.append(
            f"training.batchSize auto: estimated with {AUTO_BATCH_ESTIMATE} example per device; "
            "the trainer finds the largest batch that fits when it runs"
        )
    if estimate.trainingTokens is None:
        lines.append("time: unknown (pass --dataset-tokens, or use a local file:// dataset)")
    else:
        lines.append(f"training tokens: {estimate.trainingTokens:,}")
    lines.append(f"{'GPU':<24} {'GiB':>5} {'fits':>5} {'tokens/s':>12} {'time':>8} {'cost $':>9}")
    for row in estimate.rows:
        marker = " <- requested" if row.gpu.product == estimate.requested else ""
        hours = _duration(row.hours) if row.hours is not None else "-"
        cost = f"{row.cost:.2f}" if row.cost is not None else "-"
        lines.append(
            f"{row.gpu.product:<24} {row.gpu.memoryGiB:>5.0f} {'yes' if row.fits else 'no':>5} "
            f"{row.tokensPerSecond:>12,.0f} {hours:>8} {cost:>9}{marker}"
        )
    if estimate.requested is not None and estimate.requested not in GPUS:
        lines.append(f"requested GPU {estimate.requested} is not in the table")
    elif estimate.requested is not None and estimate.requested_fits is False:
        lines.append(
            f"does not fit: {_gib(m.total)} GiB needed per GPU, the requested "
            f"{estimate.requested} has {GPUS[estimate.requested].memoryGiB:.0f} GiB; lower "
            "training.batchSize or dataset.maxLength, enable gradientCheckpointing, use qlora, "
            "or add GPUs"
        )
    return "\n".join(lines)
