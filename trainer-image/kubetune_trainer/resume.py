"""Where a (re)started run begins: the newest complete checkpoint in the store, if any.

Under torchrun the ranks of a node share one work directory: local rank 0 downloads, the
others wait at a barrier and then read the same folder. Each node downloads its own copy.

A checkpoint at the run's last step (the previous attempt trained to the end and was
stopped while publishing) is not trained from: transformers resumes a ``maxSteps`` run
in the middle of an epoch at the next batch and checks ``max_steps`` only after that
step, so it would train one step past the end. :func:`finished` spots such a
checkpoint and :func:`load_finished` puts it into the Trainer without training.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubetune_trainer import distributed
from kubetune_trainer.checkpoints import CheckpointStore, RemoteCheckpoint

if TYPE_CHECKING:
    from transformers import Trainer, TrainerState, TrainingArguments

#: The Trainer's state file in a checkpoint folder (transformers' ``TRAINER_STATE_NAME``).
STATE_FILE = "trainer_state.json"


@dataclass
class ResumePoint:
    folder: Path | None
    """The local checkpoint folder to pass to ``Trainer.train``; ``None``: start fresh."""
    resumes: int
    """Resumes of this job so far, this one included."""
    step: int = 0
    checkpoint: RemoteCheckpoint | None = None
    """The checkpoint in the store that ``folder`` is a copy of."""


def resume_point(store: CheckpointStore, checkpoint_dir: Path) -> ResumePoint:
    """Download the newest complete checkpoint (skipping incomplete ones) for every rank.

    Local checkpoint folders are removed first: a reused work folder may hold ones that
    an earlier attempt saved but never uploaded, and only the store's are trusted.
    """
    latest = store.latest()
    if distributed.local_rank() == 0:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        if latest is not None:
            store.fetch(latest, checkpoint_dir)
    distributed.barrier()
    if latest is None:
        return ResumePoint(None, 0)
    return ResumePoint(
        checkpoint_dir / f"checkpoint-{latest.step}", latest.resumes + 1, latest.step, latest
    )


def saved_state(folder: Path) -> TrainerState:
    from transformers import TrainerState

    return TrainerState.load_from_json(str(folder / STATE_FILE))


def finished(args: TrainingArguments, saved: TrainerState) -> bool:
    """Whether the checkpoint whose state is ``saved`` is at (or past) the end this run plans.

    With ``maxSteps`` the end is known without the data. With epochs it is the saved
    ``max_steps`` when this run asks for no more epochs than the saved run did; with more
    epochs the checkpoint is not the end (the Trainer trains the epochs left).
    """
    if args.max_steps > 0:
        return saved.global_step >= args.max_steps
    more_epochs = math.ceil(args.num_train_epochs) > saved.num_train_epochs
    return not more_epochs and saved.global_step >= saved.max_steps


def load_finished(trainer: Trainer, folder: Path) -> None:
    """The checkpoint's weights and state into ``trainer``, as after its last step.

    Weights go through the Trainer's own loader, the one ``train()`` uses for the
    checkpoints it wrote (adapter, full weights or shards). The saved state carries the
    log history; its rank flags are those of the process that saved it, so they are set
    for this process.
    """
    trainer._load_from_checkpoint(str(folder))
    state = saved_state(folder)
    state.is_local_process_zero = trainer.is_local_process_zero()
    state.is_world_process_zero = trainer.is_world_process_zero()
    trainer.state = state
