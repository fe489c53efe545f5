"""Supervised fine-tuning (TRL ``SFTTrainer``) on conversations, prompt/completion or text."""

from __future__ import annotations

import importlib.util

import torch
from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from kubetune_contract.api.resolved import SftJobSpec
from kubetune_trainer.methods.common import MethodContext, training_arguments


def build(ctx: MethodContext[SftJobSpec]) -> Trainer:
    settings = ctx.spec.sft
    dataset = ctx.dataset
    config = SFTConfig(
        **training_arguments(ctx),
        max_length=dataset.maxLength,
        packing=dataset.packing,
        # Liger's Triton kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy that
        # never materialises the logits): faster and lighter, GPU only, when the image has
        # liger-kernel.
        use_liger_kernel=torch.cuda.is_available()
        and importlib.util.find_spec("liger_kernel") is not None,
        completion_only_loss=settings.completionOnlyLoss,
        assistant_only_loss=settings.assistantOnlyLoss,
    )
    return SFTTrainer(args=config, **ctx.trainer_kwargs())
