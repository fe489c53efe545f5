"""Training data: read every source, convert its format, shape rows for the method, split.

The result is what TRL's trainers take (``datasets.Dataset`` in the shapes listed in the
trainer-stack notes) plus a :class:`DataReport` for the result manifest: the SHA-256 and
row count of every file read and the number of training and evaluation rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubetune_trainer.data import quality
from kubetune_trainer.data.formats import Kind, Row, RowProblem, to_canonical
from kubetune_trainer.data.readers import read_source
from kubetune_trainer.errors import InvalidConfigError, InvalidDataError

if TYPE_CHECKING:
    import datasets

    from kubetune_contract.api.dataset import DatasetSpec
    from kubetune_contract.api.sources import DataSource
    from kubetune_contract.data.quality import QualityReport

#: The canonical kinds each method can train on.
METHOD_KINDS: dict[str, tuple[Kind, ...]] = {
    "sft": ("conversation", "promptCompletion", "text"),
    "dpo": ("preference",),
    "orpo": ("preference",),
    "reward": ("preference",),
    "kto": ("unpaired", "preference"),
    "grpo": ("conversation", "promptCompletion"),
    "rloo": ("conversation", "promptCompletion"),
}
ONLINE = ("grpo", "rloo")


@dataclass
class FileReport:
    uri: str
    sha256: str
    rows: int
    format: str


@dataclass
class DataReport:
    files: list[FileReport] = field(default_factory=list)
    trainRows: int = 0
    evalRows: int = 0
    quality: QualityReport | None = None
    """What ``dataset.quality`` found in the training rows (``None``: no rules)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": [vars(f) for f in self.files],
            "trainRows": self.trainRows,
            "evalRows": self.evalRows,
        }
        if self.quality is not None:
            out["quality"] = self.quality.to_dict()
        return out


@dataclass
class PreparedData:
    train: datasets.Dataset
    eval: datasets.Dataset | None
    report: DataReport


def _text_of(value: str | list[Row]) -> str:
    return value if isinstance(value, str) else "\n".join(m["content"] for m in value)


def shape(method: str, kind: Kind, row: Row, source: Row) -> list[Row]:
    """One canonical row -> the rows the method's TRL trainer takes (KTO may split one)."""
    if method == "sft":
        if kind == "promptCompletion" and "completion" not in row:
            raise RowProblem("sft needs a completion for every prompt")
        return [row]
    if method == "kto" and kind == "preference":
        if "prompt" not in row:
            raise RowProblem("kto needs an explicit prompt column in preference data")
        return [
            {"prompt": row["prompt"], "completion": row["chosen"], "label": True},
            {"prompt": row["prompt"], "completion": row["rejected"], "label": False},
        ]
    if method in ONLINE:
        if kind == "conversation":
            messages = row["messages"]
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            if last == 0:
                raise RowProblem("the conversation has no prompt before the assistant's answer")
            row = {"prompt": messages[:last], "completion": messages[last]["content"]}
        elif "completion" in row:
            row = {**row, "completion": _text_of(row["completion"])}
        # Extra scalar columns (e.g. a reference answer) reach the reward functions.
        extras = {
            k: v
            for k, v in source.items()
            if k not in row and isinstance(v, str | int | float | bool)
        }
        return [{**extras, **row}]
    if method in ("dpo", "orpo") and "prompt" not in row and isinstance(row["chosen"], str):
        raise RowProblem(f"{method} needs a prompt column when chosen/rejected are plain strings")
    return [row]


def _load(source: DataSource, method: str, report: DataReport) -> list[Row]:
    out: list[Row] = []
    for file in read_source(source.uri, split=source.split):
        fmt, converted = to_canonical(file.rows, file.uri, source.format)
        if fmt.kind not in METHOD_KINDS[method]:
            accepted = ", ".join(METHOD_KINDS[method])
            raise InvalidDataError(
                f"{file.uri}: format {fmt.name} gives {fmt.kind} rows, but method {method} "
                f"trains on {accepted} rows"
            )
        for number, row in converted:
            try:
                out.extend(shape(method, fmt.kind, row, file.rows[number - 1]))
            except RowProblem as exc:
                raise InvalidDataError(f"{file.uri}, row {number}: {exc}") from None
        report.files.append(FileReport(file.uri, file.sha256, len(file.rows), fmt.name))
    return out


def _dataset(rows: list[Row], what: str) -> datasets.Dataset:
    import datasets
    import pyarrow

    try:
        return datasets.Dataset.from_list(rows)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, TypeError) as exc:
        raise InvalidDataError(
            f"the {what} rows do not share one shape (e.g. a column is a string in some rows "
            f"and a list in others): {exc}"
        ) from exc


def prepare(spec: DatasetSpec, method: str, seed: int) -> PreparedData:
    """Read, convert, shape and split the data of a job."""
    if method not in METHOD_KINDS:
        raise InvalidConfigError(f"method {method!r} is not supported by this trainer")
    report = DataReport()
    train_rows = _load(spec.train, method, report)
    if spec.quality is not None:
        train_rows, report.quality = quality.apply(train_rows, spec.quality)
    if not train_rows:
        raise InvalidDataError(f"{spec.train.uri}: no training rows left to train on")
    eval_rows: list[Row] = []
    if spec.validation is not None:
        eval_rows = _load(spec.validation, method, report)
    elif spec.validationSplit is not None:
        order = list(range(len(train_rows)))
        random.Random(seed).shuffle(order)
        held = max(1, round(len(order) * float(spec.validationSplit)))
        if held >= len(order):
            raise InvalidDataError(
                f"validationSplit {spec.validationSplit} leaves no training rows out of "
                f"{len(order)}"
            )
        keep = set(order[held:])
        eval_rows = [train_rows[i] for i in sorted(order[:held])]
        train_rows = [row for i, row in enumerate(train_rows) if i in keep]
    report.trainRows, report.evalRows = len(train_rows), len(eval_rows)
    return PreparedData(
        train=_dataset(train_rows, "training"),
        eval=_dataset(eval_rows, "validation") if eval_rows else None,
        report=report,
    )
