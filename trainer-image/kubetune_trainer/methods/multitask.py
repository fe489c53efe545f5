"""Multi-task classification: one shared backbone (with its adapter), one head per task.

Every example carries the index of its task; the model pools the backbone's last hidden
states (mean over real tokens), each task's head scores its own examples, and the loss is
the cross-entropy weighted by the task's ``lossWeight``. Evaluation reports accuracy and
macro F1 per task (``eval_<task>_accuracy``, ``eval_<task>_f1``) and their means.

The result folder holds the backbone's adapter (or full weights) as ``save_pretrained``
writes it, plus ``heads.safetensors`` and ``heads.json`` (task names, label counts,
weights): everything needed to put the classifier back together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from kubetune_contract.api.resolved import MultitaskJobSpec
from kubetune_trainer.data.tasks import MAX_LENGTH
from kubetune_trainer.methods.common import MethodContext, training_arguments

if TYPE_CHECKING:
    from transformers import EvalPrediction

    from kubetune_contract.api.methods import TaskSpec

HEADS_WEIGHTS = "heads.safetensors"
HEADS_CONFIG = "heads.json"


class MultitaskModel(nn.Module):
    """Backbone + one linear head per task; ``forward`` returns the weighted loss and the
    logits of each example's own head (padded to the widest head with a large negative)."""

    weights: torch.Tensor
    #: A transformers or PEFT model (``save_pretrained``, checkpointing switches).
    backbone: Any

    def __init__(self, backbone: nn.Module, hidden: int, tasks: list[TaskSpec]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(hidden, t.numLabels) for t in tasks)
        self.register_buffer("weights", torch.tensor([float(t.lossWeight) for t in tasks]))
        self.width = max(t.numLabels for t in tasks)

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """What Trainer calls for ``gradientCheckpointing``: only the backbone has layers."""
        self.backbone.activation_checkpointing_enable(**kwargs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        task_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float()
        logits = pooled.new_full((len(input_ids), self.width), torch.finfo(torch.float32).min)
        for index, head in enumerate(self.heads):
            rows = task_ids == index
            if rows.any():
                logits[rows, : head.out_features] = head(pooled[rows])
        out = {"logits": logits}
        if labels is not None:
            losses = nn.functional.cross_entropy(logits, labels, reduction="none")
            out["loss"] = (losses * self.weights[task_ids]).mean()
        return out


def _f1(predicted: np.ndarray, actual: np.ndarray, classes: int) -> float:
    """Macro F1 over the classes present in either predictions or labels."""
    scores = []
    for c in range(classes):
        tp = int(np.sum((predicted == c) & (actual == c)))
        fp = int(np.sum((predicted == c) & (actual != c)))
        fn = int(np.sum((predicted != c) & (actual == c)))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def task_metrics(tasks: list[TaskSpec]) -> Any:
    """``compute_metrics`` for the Trainer: per-task accuracy and macro F1, and means."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        labels, task_ids = prediction.label_ids  # type: ignore[misc]
        predicted = np.asarray(prediction.predictions).argmax(-1)
        out: dict[str, float] = {}
        for index, task in enumerate(tasks):
            rows = np.asarray(task_ids) == index
            if not rows.any():
                continue
            mine, truth = predicted[rows], np.asarray(labels)[rows]
            out[f"{task.name}_accuracy"] = float(np.mean(mine == truth))
            out[f"{task.name}_f1"] = _f1(mine, truth, task.numLabels)
        for kind in ("accuracy", "f1"):
            values = [v for k, v in out.items() if k.endswith(f"_{kind}")]
            out[kind] = float(np.mean(values)) if values else 0.0
        return out

    return compute


class TaskResults(TrainerCallback):
    """Keeps each task's latest evaluation for the result (manifest and summary)."""

    def __init__(self, tasks: list[TaskSpec]) -> None:
        self.tasks = tasks
        self.latest: dict[str, dict[str, float]] = {}

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        for task in self.tasks:
            found = {k: (metrics or {}).get(f"eval_{task.name}_{k}") for k in ("accuracy", "f1")}
            if all(v is not None for v in found.values()):
                self.latest[task.name] = {k: float(v) for k, v in found.items() if v is not None}

    def result_notes(self) -> tuple[list[str], dict[str, Any]]:
        if not self.latest:
            return [], {}
        words = ", ".join(
            f"{name} accuracy {m['accuracy']:.3f} F1 {m['f1']:.3f}"
            for name, m in self.latest.items()
        )
        return [f"tasks: {words}"], {"tasks": self.latest}


class MultitaskTrainer(Trainer):
    """Saves and resumes the backbone's adapter plus the heads, not one opaque state dict
    of the whole (mostly frozen) model."""

    def __init__(self, *args: Any, tasks: list[TaskSpec], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tasks = tasks

    def _multitask_model(self) -> MultitaskModel:
        model = self.accelerator.unwrap_model(self.model)
        assert isinstance(model, MultitaskModel)
        return model

    def _save(
        self, output_dir: str | None = None, state_dict: dict[str, Any] | None = None
    ) -> None:
        from safetensors.torch import save_file

        folder = Path(output_dir or self.args.output_dir or ".")
        if not self.args.should_save:
            return
        folder.mkdir(parents=True, exist_ok=True)
        model = self._multitask_model()
        model.backbone.save_pretrained(folder)
        heads = {k: v.detach().contiguous().cpu() for k, v in model.heads.state_dict().items()}
        save_file(heads, str(folder / HEADS_WEIGHTS))
        layout = [
            {"name": t.name, "numLabels": t.numLabels, "lossWeight": float(t.lossWeight)}
            for t in self.tasks
        ]
        (folder / HEADS_CONFIG).write_text(
            json.dumps({"tasks": layout, "pooling": "mean", "maxLength": MAX_LENGTH}, indent=2)
        )
        if self.processing_class is not None:
            self.processing_class.save_pretrained(folder)
        torch.save(self.args, folder / "training_args.bin")

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from peft import PeftModel, set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(resume_from_checkpoint)
        target = self._multitask_model()
        if isinstance(target.backbone, PeftModel):
            set_peft_model_state_dict(
                target.backbone, load_file(str(folder / "adapter_model.safetensors"))
            )
        else:  # full or partial: save_pretrained wrote one file or several shards
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(folder.glob("model*.safetensors")):
                state.update(load_file(str(shard)))
            target.backbone.load_state_dict(state)
        target.heads.load_state_dict(load_file(str(folder / HEADS_WEIGHTS)))


def build(ctx: MethodContext[MultitaskJobSpec]) -> Trainer:
    from peft import get_peft_model

    spec = ctx.spec
    tasks = list(spec.multitask.tasks)
    # The causal LM's decoder without its vocabulary head: the shared backbone.
    backbone: nn.Module = ctx.model.base_model
    if ctx.peft_config is not None:
        ctx.peft_config.task_type = "FEATURE_EXTRACTION"
        backbone = get_peft_model(backbone, ctx.peft_config)
    model = MultitaskModel(backbone, ctx.model.config.hidden_size, tasks)
    model.to(ctx.model.device)
    args = TrainingArguments(
        **training_arguments(ctx),
        label_names=["labels", "task_ids"],
        remove_unused_columns=False,
    )
    return MultitaskTrainer(
        model=model,
        args=args,
        train_dataset=ctx.data.train,
        eval_dataset=ctx.data.eval,
        processing_class=ctx.tokenizer,
        data_collator=DataCollatorWithPadding(ctx.tokenizer),
        compute_metrics=task_metrics(tasks),
        callbacks=[*ctx.callbacks, TaskResults(tasks)],
        tasks=tasks,
    )
