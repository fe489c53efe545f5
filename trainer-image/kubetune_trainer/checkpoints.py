"""Checkpoints in the output store, so that a preempted or restarted pod resumes.

Layout under ``output.uri``::

    checkpoints/step-<step>/...            the Trainer's checkpoint folder (weights or
                                           adapter, optimizer, scheduler, RNG, state)
    checkpoints/step-<step>/COMPLETE       written last: the upload is whole

Object stores have no atomic rename of a folder, so "complete" is a marker object:
every file is uploaded first, the marker (a single ``PUT``, atomic in S3/GCS/Azure)
last. A checkpoint without ``COMPLETE`` (the pod was killed mid-upload, the store went
away) is never resumed from, and is removed by the next prune. A folder is emptied before
it is uploaded again, so files of an earlier half-upload never mix into a complete one.
Only the newest ``checkpoints.keep`` complete ones are kept.

The marker also records how many times the run that wrote it had resumed, so that the
count survives restarts without any other state (see :attr:`RemoteCheckpoint.resumes`).
Locally the Trainer names its folders ``checkpoint-<step>`` (:data:`LOCAL_NAME`).
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
#: Checkpoint folders in the store.
NAME = re.compile(r"^step-(\d+)$")
#: Checkpoint folders the Trainer writes locally (transformers' naming).
LOCAL_NAME = re.compile(r"^checkpoint-(\d+)$")
#: Written by transformers' just-in-time checkpoint while a save is in progress.
INCOMPLETE_SENTINEL = "checkpoint-is-incomplete.txt"


@dataclass
class RemoteCheckpoint:
    step: int
    uri: str
    evalLoss: float | None = None
    resumes: int = 0
    """How many times the run that saved this checkpoint had been resumed."""

    def as_dict(self) -> dict[str, object]:
        """The termination summary's entry (the operator's ``status.checkpoints``)."""
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
        return storage.join(self.root, f"step-{step}")

    def complete(self) -> list[RemoteCheckpoint]:
        """Complete checkpoints, oldest first, with what their markers record."""
        found = []
        for step in self._steps():
            marker = storage.join(self.uri(step), MARKER)
            if storage.exists(marker):
                info = json.loads(storage.read_bytes(marker) or b"{}")
                found.append(
                    RemoteCheckpoint(
                        step, self.uri(step), info.get("evalLoss"), int(info.get("resumes", 0))
                    )
                )
        return found

    def upload(
        self, folder: Path, step: int, eval_loss: float | None, resumes: int = 0
    ) -> RemoteCheckpoint:
        """Upload a local checkpoint folder, marker last; then prune old ones."""
        if (folder / INCOMPLETE_SENTINEL).exists():
            raise RuntimeError(f"{folder} is still being written")
        target = self.uri(step)
        # A resumed run re-saves steps an earlier, interrupted upload may have half written.
        storage.remove_tree(target)
        storage.upload_dir(folder, target)
        marker = json.dumps({"step": step, "evalLoss": eval_loss, "resumes": resumes}).encode()
        storage.write_bytes(storage.join(target, MARKER), marker)
        self.prune()
        return RemoteCheckpoint(step, target, eval_loss, resumes)

    def prune(self) -> None:
        """Keep the newest ``keep`` complete checkpoints; drop incomplete ones older than
        the newest complete one (a newer incomplete one may be an upload in progress)."""
        complete = {c.step for c in self.complete()}
        newest_kept = sorted(complete)[-self.keep :]
        for step in self._steps():
            if step not in newest_kept and (step in complete or step < max(complete, default=0)):
                storage.remove_tree(self.uri(step))

    def clear(self) -> None:
        """Forget every checkpoint (a fresh start must not resume a previous run)."""
        storage.remove_tree(self.root)

    def latest(self) -> RemoteCheckpoint | None:
        complete = self.complete()
        return complete[-1] if complete else None

    def fetch(self, checkpoint: RemoteCheckpoint, work_dir: Path) -> Path:
        """Download a complete checkpoint into ``work_dir/checkpoint-<step>``."""
        local = work_dir / f"checkpoint-{checkpoint.step}"
        if local.exists():
            shutil.rmtree(local)
        if storage.is_remote(checkpoint.uri):
            storage.download_dir(checkpoint.uri, local)
        else:
            shutil.copytree(storage.local_path(checkpoint.uri), local)
        (local / MARKER).unlink(missing_ok=True)
        log.info("resuming from %s (step %d)", checkpoint.uri, checkpoint.step)
        return local
