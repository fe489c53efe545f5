"""Where a (re)started run begins: the newest complete checkpoint in the store, if any.

Under torchrun the ranks of a node share one work directory: local rank 0 downloads, the
others wait at a barrier and then read the same folder. Each node downloads its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubetune_trainer import distributed
from kubetune_trainer.checkpoints import CheckpointStore


@dataclass
class ResumePoint:
    folder: Path | None
    """The local checkpoint folder to pass to ``Trainer.train``; ``None``: start fresh."""
    resumes: int
    """Resumes of this job so far, this one included."""
    step: int = 0


def resume_point(store: CheckpointStore, checkpoint_dir: Path) -> ResumePoint:
    """Download the newest complete checkpoint (skipping incomplete ones) for every rank."""
    latest = store.latest()
    if latest is None:
        return ResumePoint(None, 0)
    if distributed.local_rank() == 0:
        store.fetch(latest, checkpoint_dir)
    distributed.barrier()
    return ResumePoint(
        checkpoint_dir / f"checkpoint-{latest.step}", latest.resumes + 1, latest.step
    )
