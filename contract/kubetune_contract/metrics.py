"""The trainer's Prometheus metric names: what it serves and the operator reads.

The operator scrapes rank 0's page for progress (``step``, ``total_steps``, ``loss``,
``eval_loss``, ``epoch``, ``tokens_per_second``) and the chart's alert rules and dashboard
query the same names; the trainer (:mod:`kubetune_trainer.metrics`) registers exactly these.
Every name below is served with :data:`PREFIX` in front.
"""

from __future__ import annotations

PREFIX = "kubetune_trainer_"

#: Gauges: name -> help.
DESCRIPTIONS = {
    "step": "Optimizer steps done.",
    "total_steps": "Optimizer steps planned.",
    "epoch": "Epochs done (fractional).",
    "loss": "Training loss of the last logging window.",
    "eval_loss": "Loss on the validation data at the last evaluation.",
    "learning_rate": "Current learning rate.",
    "grad_norm": "Gradient norm before clipping.",
    "tokens_per_second": "Input tokens processed per second by this process.",
    "samples_per_second": "Examples processed per second by this process.",
    "gpu_memory_bytes": "Peak CUDA memory allocated by this process.",
    "last_checkpoint_step": "Step of the newest checkpoint uploaded to the output store.",
    "resumes": "Times this job resumed from a checkpoint (over all its pods).",
}
#: Gauges with labels: name -> (help, label names).
LABELLED = {
    "evaluation_answers": ("Evaluation prompts answered so far, per model.", ("model",)),
    "evaluation_score": (
        "An evaluation metric's mean over the prompts, base and tuned model.",
        ("metric", "model"),
    ),
    "evaluation_gate_passed": (
        "1 when the tuned model met the metric's evaluation gate threshold, 0 when not.",
        ("metric",),
    ),
}
COUNTERS = {
    "checkpoints": "Checkpoints uploaded to the output store (completion marker written).",
    "checkpoint_upload_failures": "Checkpoint uploads that failed after their retries.",
}
