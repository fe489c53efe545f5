"""GPU products (memory, peak bf16 throughput) and the time a run takes on them.

Peak dense bf16 (fp16 for T4) tensor TFLOP/s are the vendors' datasheet figures. Model
FLOPs utilisation (MFU) is what well-tuned fine-tuning reaches in practice: about 40%
for bf16 LoRA/full training and 30% for QLoRA (de-quantizing every weight costs time).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubetune.estimate.shapes import ModelShape
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.training import Precision


@dataclass(frozen=True)
class Gpu:
    """One GPU product as the ``nvidia.com/gpu.product`` node label names it."""

    product: str
    memoryGiB: float
    peakTflops: float
    bf16: bool = True
    """Whether it computes in bf16 (Ampere and newer); what ``precision: auto`` picks."""


GPUS: dict[str, Gpu] = {
    gpu.product: gpu
    for gpu in (
        Gpu("NVIDIA-H200", 141, 989),
        Gpu("NVIDIA-H100-80GB-HBM3", 80, 989),
        Gpu("NVIDIA-A100-SXM4-80GB", 80, 312),
        Gpu("NVIDIA-A100-SXM4-40GB", 40, 312),
        Gpu("NVIDIA-L40S", 48, 362),
        Gpu("NVIDIA-A10G", 24, 70),
        Gpu("NVIDIA-L4", 24, 121),
        Gpu("Tesla-T4", 16, 65, bf16=False),
    )
}


def precision(spec: FineTuneJobSpec) -> Precision:
    """``training.precision`` as far as the spec can tell: ``auto`` is fp32 on CPU
    (``resources.gpus: 0``), bf16 or fp32 on a catalogued ``resources.gpuType`` as the GPU
    supports bf16, and stays ``auto`` on an unnamed or unknown GPU, for the trainer to
    decide on the device it finds."""
    chosen = spec.training.precision
    if chosen != "auto":
        return chosen
    if spec.resources.gpus == 0:
        return "fp32"
    gpu = GPUS.get(spec.resources.gpuType or "")
    if gpu is None:
        return "auto"
    return "bf16" if gpu.bf16 else "fp32"


def mfu(spec: FineTuneJobSpec) -> float:
    """Model FLOPs utilisation assumed for this spec."""
    return 0.30 if spec.adapter.type == "qlora" else 0.40


def flops_per_token(shape: ModelShape, spec: FineTuneJobSpec) -> float:
    """Training FLOPs per token: forward 2N, backward 2N for activation gradients plus 2N
    for weight gradients when every weight trains; recomputation adds a forward (2N)."""
    n = shape.parameters
    flops = 6 * n if spec.adapter.type in ("full", "partial") else 4 * n
    if spec.training.gradientCheckpointing:
        flops += 2 * n
    return float(flops)


def tokens_per_second(shape: ModelShape, spec: FineTuneJobSpec, gpu: Gpu) -> float:
    """Throughput of the whole job (every GPU of every node) on ``gpu``."""
    devices = max(spec.resources.gpus, 1) * spec.resources.nodes
    return devices * gpu.peakTflops * 1e12 * mfu(spec) / flops_per_token(shape, spec)
