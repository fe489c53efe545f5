"""Data of a ``multitask`` job: each task's rows -> tokenized examples tagged with the task.

Each task names its own source, text column and label column, so there is no shared
``dataset`` block; a share of every task's rows is held out (with the job's seed) so that
each head has evaluation data for its accuracy and F1, and no task ends up without.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from kubetune_trainer.data import DataReport, FileReport, PreparedData, _dataset
from kubetune_trainer.data.readers import read_source
from kubetune_trainer.errors import InvalidDataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from kubetune_contract.api.methods import TaskSpec

#: Share of each task's rows held out for evaluation (at least one row).
EVAL_SHARE = 0.2
#: Longest input in tokens (a multitask job has no dataset.maxLength).
MAX_LENGTH = 512


def _label(value: Any, task: TaskSpec, where: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidDataError(
            f"{where}: {task.labelColumn!r} must be an integer class index, got {value!r}"
        )
    if not 0 <= value < task.numLabels:
        raise InvalidDataError(
            f"{where}: label {value} is outside 0..{task.numLabels - 1} "
            f"(task {task.name} has numLabels {task.numLabels})"
        )
    return value


def _rows(task: TaskSpec, report: DataReport) -> list[tuple[str, int]]:
    out = []
    for file in read_source(task.dataset.uri, split=task.dataset.split):
        for number, row in enumerate(file.rows, start=1):
            where = f"{file.uri}, row {number}"
            text = row.get(task.textColumn)
            if not isinstance(text, str) or not text.strip():
                raise InvalidDataError(
                    f"{where}: column {task.textColumn!r} is missing or empty "
                    f"(task {task.name}'s textColumn)"
                )
            out.append((text, _label(row.get(task.labelColumn), task, where)))
        report.files.append(FileReport(file.uri, file.sha256, len(file.rows), f"task:{task.name}"))
    if len(out) < 2:
        raise InvalidDataError(
            f"task {task.name}: needs at least 2 rows (one is held out for "
            f"evaluation), found {len(out)}"
        )
    return out


def prepare(tasks: list[TaskSpec], tokenizer: PreTrainedTokenizerBase, seed: int) -> PreparedData:
    """Tokenized ``input_ids``, ``attention_mask``, ``labels``, ``task_ids`` (the task's
    index in ``tasks``) for training and evaluation."""
    report = DataReport()
    train: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for index, task in enumerate(tasks):
        rows = _rows(task, report)
        random.Random(f"{seed}:{task.name}").shuffle(rows)
        cut = max(1, round(len(rows) * EVAL_SHARE))
        for part, chunk in ((held, rows[:cut]), (train, rows[cut:])):
            encoded = tokenizer([t for t, _ in chunk], truncation=True, max_length=MAX_LENGTH)
            part.extend(
                {"input_ids": ids, "attention_mask": mask, "labels": label, "task_ids": index}
                for ids, mask, (_, label) in zip(
                    encoded["input_ids"], encoded["attention_mask"], chunk, strict=True
                )
            )
    report.trainRows, report.evalRows = len(train), len(held)
    return PreparedData(_dataset(train, "training"), _dataset(held, "validation"), report)
