"""Plumbing every method shares: the context a method gets and the common trainer arguments.

Each method module only adds what is specific to it (its TRL config class, its own
settings block, its trainer); everything that maps ``training``, ``checkpoints`` and
``tracking`` onto ``TrainingArguments`` lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_trainer import adapters, distributed, sharding
from kubetune_trainer.errors import InvalidConfigError

if TYPE_CHECKING:
    from peft import PeftConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

    from kubetune_contract.api.dataset import DatasetSpec
    from kubetune_trainer.batch_sizing import BatchSize
    from kubetune_trainer.data import PreparedData

#: The resolved spec of one method (``DpoJobSpec``, ...): its settings block is never None.
Spec = TypeVar("Spec", bound=FineTuneJobSpec)

SCHEDULERS = {
    "linear": "linear",
    "cosine": "cosine",
    "cosineWithRestarts": "cosine_with_restarts",
    "polynomial": "polynomial",
    "constant": "constant",
    "constantWithWarmup": "constant_with_warmup",
}
OPTIMIZERS = {
    "adamw": "adamw_torch",
    "adamwFused": "adamw_torch_fused",
    "adamw8bit": "adamw_bnb_8bit",
    "pagedAdamw8bit": "paged_adamw_8bit",
    "adafactor": "adafactor",
    "sgd": "sgd",
}


@dataclass
class MethodContext(Generic[Spec]):
    """Everything a method needs to build its TRL trainer.

    Each method module takes the context of its own resolved spec type, so it reads its
    settings block without a default of its own.
    """

    spec: Spec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    peft_config: PeftConfig | None
    data: PreparedData
    output_dir: Path
    batch: BatchSize
    """The per-device batch, resolved once for this machine (:func:`batch_sizing.batch_size`)."""
    callbacks: list[TrainerCallback] = field(default_factory=list)

    @property
    def dataset(self) -> DatasetSpec:
        if self.spec.dataset is None:
            raise InvalidConfigError(f"method {self.spec.method} needs a dataset")
        return self.spec.dataset

    def trainer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every TRL trainer takes the same way."""
        return {
            "model": self.model,
            "train_dataset": self.data.train,
            "eval_dataset": self.data.eval,
            "processing_class": self.tokenizer,
            "callbacks": self.callbacks,
            "peft_config": self.peft_config,
        }


def training_arguments(ctx: MethodContext[Any]) -> dict[str, Any]:
    """``TrainingArguments`` fields from the spec, shared by every method's TRL config."""
    import torch

    spec = ctx.spec
    training = spec.training
    has_eval = ctx.data.eval is not None
    on_gpu = torch.cuda.is_available()
    precision = adapters.device_precision(training.precision)
    batch = ctx.batch
    warmup: float | int = 0
    if training.warmupRatio is not None:
        warmup = float(training.warmupRatio)
    elif training.warmupSteps is not None:
        warmup = training.warmupSteps
    return {
        "output_dir": str(ctx.output_dir),
        "num_train_epochs": training.epochs or 1,
        "max_steps": training.maxSteps or -1,
        "learning_rate": float(training.learningRate),
        "per_device_train_batch_size": batch.size,
        "per_device_eval_batch_size": batch.size,
        "auto_find_batch_size": batch.probe,
        "gradient_accumulation_steps": training.gradientAccumulationSteps,
        "warmup_steps": warmup,
        "lr_scheduler_type": SCHEDULERS[training.scheduler],
        "weight_decay": float(training.weightDecay),
        "max_grad_norm": float(training.maxGradNorm),
        "optim": OPTIMIZERS[training.optimizer],
        "seed": training.seed,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not on_gpu,
        "activation_checkpointing": training.gradientCheckpointing,
        "logging_steps": training.loggingIntervalSteps,
        "logging_first_step": True,
        "eval_strategy": ("steps" if training.evalIntervalSteps else "epoch") if has_eval else "no",
        "eval_steps": training.evalIntervalSteps,
        "save_strategy": "steps",
        "save_steps": spec.checkpoints.intervalSteps,
        "save_total_limit": spec.checkpoints.keep,
        # SIGTERM is handled by kubetune_trainer.preemption (a save after the optimizer
        # step, agreed across ranks), not by transformers' just-in-time checkpoint.
        "enable_jit_checkpoint": False,
        "report_to": [spec.tracking.backend] if spec.tracking is not None else "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **sharding.training_arguments(
            training.sharding,
            training.gradientCheckpointing,
            on_gpu=on_gpu,
            world_size=distributed.world_size(),
        ),
    }
