"""Reports saved next to the adapter, and what they add to the result.

The quality report and the training curves are written into the folder that is
uploaded as the result, so they travel with the adapter they describe; the early-stop
reason and the quality summary also go into the manifest and the termination message,
where ``kubectl describe`` shows them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubetune_trainer.data.quality import REPORT_FILE
from kubetune_trainer.monitoring import Reporting, save_curves

if TYPE_CHECKING:
    from kubetune_trainer.batch_sizing import BatchSize
    from kubetune_trainer.data import DataReport


@dataclass
class Notes:
    """Short sentences for the termination message and entries for the manifest."""

    messages: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)


def save(
    data: DataReport,
    metrics_file: Path,
    folder: Path,
    callbacks: list[Any],
    *,
    title: str,
    batch: BatchSize | None = None,
    trained_batch: int | None = None,
) -> Notes:
    """Write the reports into ``folder`` (the result folder) and say what they found;
    add what the ``callbacks`` that are :class:`~kubetune_trainer.monitoring.Reporting`
    have to say (early stopping, per-task metrics).

    ``batch``/``trained_batch``: what ``training.batchSize: auto`` chose and the per-device
    batch the run ended with (lower than the start after out-of-memory halving).
    """
    notes = Notes()
    if batch is not None and batch.note is not None:
        used = trained_batch or batch.size
        notes.messages.append(f"{batch.note}; trained with {used} per device")
        notes.manifest["batchSize"] = {"auto": True, "perDevice": used, "probed": batch.probe}
    for callback in callbacks:
        if isinstance(callback, Reporting):
            messages, entries = callback.result_notes()
            notes.messages.extend(messages)
            notes.manifest.update(entries)
    if data.quality is not None:
        (folder / REPORT_FILE).write_text(
            json.dumps(data.quality.to_dict(), indent=2), encoding="utf-8"
        )
        notes.messages.append(f"data quality: {data.quality.summary()}")
    curves = save_curves(metrics_file, folder, title)
    if curves is not None:
        notes.manifest["curves"] = curves.name
    return notes
