"""``training.batchSize: auto``: the memory option that needs code of its own (precision,
gradient checkpointing and the optimizers, 8-bit ones included, map straight onto
``TrainingArguments``; bitsandbytes 0.50 runs its 8-bit optimizers on CPU too).

``auto`` on a GPU starts at :data:`AUTO_START` examples (fewer for a small dataset) and
lets transformers' ``auto_find_batch_size`` halve it on every out-of-memory error until a
step fits: the largest power-of-two batch below the start that fits, found by probing
with the real model and data instead of guessing from a formula. On CPU there is no
out-of-memory error to probe with (the machine swaps or the kernel kills the pod), so a
safe default is used and the log and result say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

if TYPE_CHECKING:
    from kubetune_contract.api.training import TrainingSpec

#: Where GPU probing starts (then 64, 32, ... on out-of-memory).
AUTO_START = 128
#: The per-device evaluation batch before probing has found the training batch.
EVAL_START = 8
#: The per-device batch ``auto`` means on CPU.
CPU_AUTO = 4


@dataclass(frozen=True)
class BatchSize:
    """The per-device batch to start with and whether to probe downwards from it."""

    size: int
    probe: bool = False
    note: str | None = None
    """What ``auto`` chose, for the log and the result; ``None`` for a fixed size."""


def _power_of_two_at_least(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def batch_size(training: TrainingSpec, *, on_gpu: bool, train_rows: int) -> BatchSize:
    """Resolve ``training.batchSize`` (a number, or ``auto``) for this machine."""
    if isinstance(training.batchSize, int):
        return BatchSize(training.batchSize)
    if not on_gpu:
        return BatchSize(
            CPU_AUTO,
            note=f"training.batchSize auto: {CPU_AUTO} per device on "
            "CPU (no out-of-memory probing without a GPU)",
        )
    start = min(AUTO_START, _power_of_two_at_least(max(train_rows, 1)))
    return BatchSize(
        start,
        probe=True,
        note=f"training.batchSize auto: probing from {start} per device, halving on out-of-memory",
    )


class EvalBatchFollowsTraining(TrainerCallback):
    """With ``auto`` on a GPU, evaluation must not use the untested start value: the
    evaluation before training runs before any probing, and probing only wraps the
    training loop. Evaluation starts at :data:`EVAL_START` and, once the training loop has
    settled on a batch, uses that one (evaluation needs less memory than training at the
    same batch: no gradients, no optimizer state)."""

    def on_init_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        args.per_device_eval_batch_size = min(args.per_device_eval_batch_size, EVAL_START)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.train_batch_size:
            args.per_device_eval_batch_size = max(1, state.train_batch_size // max(1, args.n_gpu))
