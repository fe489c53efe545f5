"""Optimisation hyperparameters. Fractions are strings (no floats in a Kubernetes spec)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kubetune_contract.api.base import ApiModel, Decimal, ShortString
from kubetune_contract.api.rules import Rule, cel_decimal, exclusive, fraction_below_one
from kubetune_contract.api.sources import DataSource

Scheduler = Literal[
    "linear", "cosine", "cosineWithRestarts", "polynomial", "constant", "constantWithWarmup"
]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Optimizer = Literal["adamw", "adamwFused", "adamw8bit", "pagedAdamw8bit", "adafactor", "sgd"]
Sharding = Literal["none", "fsdp"]


class EwcSpec(ApiModel):
    """Elastic weight consolidation: keep weights that mattered for earlier data close to
    their starting values, so fine-tuning on new data forgets less of the old."""

    referenceDataset: DataSource = Field(
        description="Data of what must not be forgotten (e.g. the previous task's training "
        "set); the diagonal Fisher information is estimated on it before training."
    )
    samples: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=64, description="Reference examples used to estimate the Fisher information."
    )
    strength: Decimal = Field(
        default="100",
        description='Penalty weight lambda of sum_i F_i (theta_i - theta*_i)^2, e.g. "100".',
    )


class EarlyStoppingSpec(ApiModel):
    """Stop when an evaluation metric stops improving (overfitting detection)."""

    metric: ShortString = Field(
        default="eval_loss",
        description="Evaluation metric to watch, as the trainer logs it (eval_loss, "
        "eval_accuracy, ...).",
    )
    mode: Literal["min", "max"] = Field(
        default="min", description="Whether lower (min) or higher (max) is better."
    )
    patience: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3, description="Evaluations without improvement before stopping."
    )
    minDelta: Decimal = Field(
        default="0", description="Smallest change that counts as an improvement."
    )


class TrainingSpec(ApiModel):
    """How long and how fast to train."""

    epochs: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        default=None,
        description="Passes over the training data (default 1). Mutually exclusive with maxSteps.",
    )
    maxSteps: Annotated[int, Field(ge=1, le=10_000_000)] | None = Field(
        default=None,
        description="Stop after this many optimizer steps. Mutually exclusive with epochs.",
    )
    learningRate: Decimal = Field(
        default="2e-4", description='Peak learning rate, e.g. "2e-4"; must be in (0, 1].'
    )
    batchSize: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        default=4,
        description='Examples per device per forward pass, or "auto": on a GPU the largest '
        "batch that fits is found by probing (halving on out-of-memory); on CPU a safe "
        "default is used. Not with grpo/rloo, whose batch must divide by numGenerations.",
    )
    gradientAccumulationSteps: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=1, description="Forward passes accumulated into one optimizer step."
    )
    warmupRatio: Decimal | None = Field(
        default=None,
        description='Fraction of the steps spent warming up the learning rate, e.g. "0.03". '
        "Mutually exclusive with warmupSteps.",
    )
    warmupSteps: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        default=None, description="Warm-up steps. Mutually exclusive with warmupRatio."
    )
    scheduler: Scheduler = Field(default="cosine", description="Learning-rate schedule.")
    weightDecay: Decimal = Field(default="0", description='Weight decay, e.g. "0.01".')
    maxGradNorm: Decimal = Field(
        default="1.0", description='Gradient clipping norm, e.g. "1.0"; "0" disables clipping.'
    )
    optimizer: Optimizer = Field(
        default="adamwFused",
        description="adamwFused (torch's fused AdamW, TRL's default), adamw (torch AdamW, "
        "unfused), adamw8bit and pagedAdamw8bit (bitsandbytes, GPU), adafactor or sgd.",
    )
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = Field(
        default=42, description="Seed for data order, initialisation and sampling."
    )
    precision: Precision = Field(
        default="auto",
        description="Training precision: auto (bf16 on GPUs that support it, else fp32), "
        "bf16, fp16 or fp32.",
    )
    gradientCheckpointing: bool = Field(
        default=True,
        description="Recompute activations in the backward pass: much less memory, ~20% slower.",
    )
    sharding: Sharding = Field(
        default="none",
        description="How the weights, gradients and optimizer state are spread over the "
        "job's GPUs: none (each GPU holds a full copy; data parallel) or fsdp (fully sharded "
        "data parallel: each GPU holds a slice, so a model too large for one GPU can be fully "
        "fine-tuned). fsdp needs adapter.type full or partial and at least 2 GPUs in total.",
    )
    loggingIntervalSteps: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=10,
        description="Report loss and metrics every this many optimizer steps (like every "
        "*IntervalSteps field, an interval; maxSteps and warmupSteps are counts).",
    )
    evalIntervalSteps: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        description="Evaluate on the validation data every this many optimizer steps "
        "(default: once per epoch, and at the end).",
    )
    earlyStopping: EarlyStoppingSpec | None = Field(
        default=None,
        description="Stop when the evaluation metric stops improving (needs validation data).",
    )
    ewc: EwcSpec | None = Field(
        default=None,
        description="Catastrophic-forgetting control with elastic weight consolidation.",
    )

    rules = (
        exclusive("epochs", "maxSteps"),
        exclusive("warmupRatio", "warmupSteps"),
        fraction_below_one("warmupRatio", allow_zero=True, optional=True),
        Rule(
            field="learningRate",
            message='learningRate must be in (0, 1], e.g. "2e-4"',
            check=lambda t: 0 < float(t.learningRate) <= 1,
            cel=cel_decimal("learningRate", "{x} > 0.0 && {x} <= 1.0"),
        ),
    )
