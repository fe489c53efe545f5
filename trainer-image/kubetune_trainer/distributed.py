"""The few collective operations the trainer's own code needs under torchrun.

The Trainer (through accelerate) creates the process group; these helpers are no-ops in
a single process, so the same code runs under ``python -m`` and under ``torchrun``.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """Processes in the run (torchrun's ``WORLD_SIZE``; 1 without torchrun). Only the
    launch knows it: ``kubetune run`` and the tests start torchrun on CPU whatever
    ``resources`` says, so it is read here, the one place, and never derived from the spec."""
    return int(os.environ.get("WORLD_SIZE", "1"))


T = TypeVar("T")


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return dist.get_rank() if active() else 0


def gather_to_zero(value: T) -> list[T] | None:
    """Every rank's ``value`` on rank 0, in rank order; ``None`` on the other ranks."""
    if not active():
        return [value]
    gathered: list[T] | None = [value] * dist.get_world_size() if rank() == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def barrier() -> None:
    if active():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one.

    A decision that changes the steps a rank runs (stop now, save now) must be the same on
    every rank, or the ranks wait for each other in different collectives forever.
    ``device``: where the collective runs (a CUDA device for NCCL, the CPU for gloo).
    """
    if not active():
        return flag
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
