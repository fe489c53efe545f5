"""Checkpoints in the output store, so that a preempted or restarted pod resumes.

Layout under ``output.uri``::

    checkpoints/checkpoint-<step>/...            the Trainer's checkpoint folder
    checkpoints/checkpoint-<step>/COMPLETE       written last: the upload is whole

A checkpoint without ``COMPLETE`` (the pod died mid-upload) is ignored on resume and
removed by the next prune. Only the newest ``checkpoints.keep`` complete ones are kept.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kubetune_trainer import storage

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
FOLDER = "checkpoints"
NAME = re.compile(r"^checkpoint-(\d+)$")
#: Written by transformers' just-in-time checkpoint while a save is in progress.
INCOMPLETE_SENTINEL = "checkpoint-is-incomplete.txt"


@dataclass
class RemoteCheckpoint:
    step: int
    uri: str
    evalLoss: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {"step": self.step, "uri": self.uri, "evalLoss": self.evalLoss}


class CheckpointStore:
    """Upload, list, prune and fetch checkpoints under ``<output>/checkpoints``."""

    def __init__(self, output_uri: str, keep: int) -> None:
        self.root = storage.join(output_uri, FOLDER)
        self.keep = keep

    def _steps(self) -> list[int]:
        steps = []
        for name in storage.list_names(self.root):
            match = NAME.match(name)
            if match:
                steps.append(int(match.group(1)))
        return sorted(steps)

    def uri(self, step: int) -> str:
        return storage.join(self.root, f"checkpoint-{step}")

    def complete(self) -> list[RemoteCheckpoint]:
        """Complete checkpoints, oldest first, with the eval loss recorded in the marker."""
        found = []
        for step in self._steps():
            marker = storage.join(self.uri(step), MARKER)
            if storage.exists(marker):
                info = json.loads(storage.read_bytes(marker) or b"{}")
                found.append(RemoteCheckpoint(step, self.uri(step), info.get("evalLoss")))
        return found

    def upload(self, folder: Path, step: int, eval_loss: float | None) -> RemoteCheckpoint:
        """Upload a local checkpoint folder, marker last; then prune old ones."""
        if (folder / INCOMPLETE_SENTINEL).exists():
            raise RuntimeError(f"{folder} is still being written")
        target = self.uri(step)
        storage.upload_dir(folder, target)
        marker = json.dumps({"step": step, "evalLoss": eval_loss}).encode()
        storage.write_bytes(storage.join(target, MARKER), marker)
        self.prune()
        return RemoteCheckpoint(step, target, eval_loss)

    def prune(self) -> None:
        complete = {c.step for c in self.complete()}
        newest_kept = sorted(complete)[-self.keep :]
        for step in self._steps():
            if step not in newest_kept and (step in complete or step < max(complete, default=0)):
                storage.remove_tree(self.uri(step))

    def clear(self) -> None:
        """Forget every checkpoint (a fresh start must not resume a previous run)."""
        storage.remove_tree(self.root)

    def fetch_latest(self, work_dir: Path) -> Path | None:
        """Download the newest complete checkpoint into ``work_dir``; None if there is none."""
        complete = self.complete()
        if not complete:
            return None
        latest = complete[-1]
        local = work_dir / f"checkpoint-{latest.step}"
        if local.exists():
            shutil.rmtree(local)
        if storage.is_remote(latest.uri):
            storage.download_dir(latest.uri, local)
        else:
            shutil.copytree(storage.local_path(latest.uri), local)
        (local / MARKER).unlink(missing_ok=True)
        log.info("resuming from %s (step %d)", latest.uri, latest.step)
        return local
