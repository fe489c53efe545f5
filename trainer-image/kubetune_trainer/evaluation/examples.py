"""Evaluation examples: a prompt to answer and the reference answer to score against.

They come from ``evaluation.dataset`` (any format whose rows have a prompt: the dataset
formats of :mod:`kubetune_trainer.data.formats`) or, by default, from the job's held-out
validation rows. Read and checked before training starts: a row without a prompt or a
reference fails the job at once, naming the file and row, instead of after hours of GPU
time.

Where the reference is: ``evaluation.referenceColumn`` when set; otherwise the
completion, the last assistant message of a conversation (everything before it is the
prompt), or the chosen answer of a preference row. Unpaired preference rows labelled
undesirable are no reference and are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetune_trainer.data.formats import RowProblem, to_canonical
from kubetune_trainer.data.readers import read_source
from kubetune_trainer.errors import InvalidDataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from kubetune_contract.api.evaluation import EvaluationSpec
    from kubetune_contract.api.sources import DataSource

log = logging.getLogger(__name__)

Prompt = str | list[dict[str, Any]]


@dataclass(frozen=True)
class Example:
    """One prompt, its reference answer, and where it came from (for people)."""

    prompt: Prompt
    reference: str
    source: str


def _text(value: Any) -> str:
    """A completion or chosen answer as text (message lists: their contents)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return ""


def _split_conversation(messages: list[dict[str, Any]]) -> tuple[Prompt, str]:
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        raise RowProblem("the conversation has no assistant message to use as the reference")
    if last == 0:
        raise RowProblem("the conversation has no prompt before the assistant's answer")
    return messages[:last], str(messages[last].get("content", ""))


def example_of(
    row: Mapping[str, Any], source_row: Mapping[str, Any], spec: EvaluationSpec, source: str
) -> Example | None:
    """The example in one row (canonical or shaped for a method), ``None`` for a row that
    holds no reference by design (an undesirable unpaired answer). Raises
    :class:`RowProblem` for a row that can't be evaluated."""
    if row.get("label") is False:
        return None
    if isinstance(row.get("messages"), list):
        prompt, reference = _split_conversation(row["messages"])
    elif row.get("prompt"):
        prompt = row["prompt"]
        reference = _text(row.get("completion") or row.get("chosen"))
    else:
        raise RowProblem(
            "no prompt to answer: evaluation needs rows with a prompt (prompt/completion, "
            "preference with prompt) or a conversation (messages)"
        )
    if spec.referenceColumn is not None:
        value = source_row.get(spec.referenceColumn)
        if value is None or not str(value).strip():
            raise RowProblem(f"referenceColumn {spec.referenceColumn!r} is missing or empty")
        reference = str(value)
    if not reference.strip():
        raise RowProblem(
            "no reference answer (no completion, assistant message or chosen answer); "
            "set evaluation.referenceColumn to the column that holds it"
        )
    return Example(prompt, reference.strip(), source)


def _collect(
    rows: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]], spec: EvaluationSpec
) -> list[Example]:
    """Examples from (where, row, source row) triples, up to ``maxPrompts``."""
    found: list[Example] = []
    skipped = 0
    for where, row, source_row in rows:
        try:
            example = example_of(row, source_row, spec, where)
        except RowProblem as problem:
            raise InvalidDataError(f"evaluation data: {where}: {problem}") from None
        if example is None:
            skipped += 1
            continue
        found.append(example)
        if spec.maxPrompts is not None and len(found) >= spec.maxPrompts:
            break
    if skipped:
        log.info("evaluation: skipped %d rows labelled undesirable (no reference)", skipped)
    return found


def _from_source(spec: EvaluationSpec, source: DataSource) -> list[Example]:
    def rows() -> Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
        for file in read_source(source.uri, split=source.split):
            try:
                _, converted = to_canonical(file.rows, file.uri, source.format)
            except InvalidDataError as exc:
                raise InvalidDataError(f"evaluation data: {exc}") from None
            for number, row in converted:
                yield f"{file.uri}, row {number}", row, file.rows[number - 1]

    return _collect(rows(), spec)


def load(spec: EvaluationSpec, held_out: Iterable[Mapping[str, Any]] | None) -> list[Example]:
    """The examples of ``spec``: its dataset, or the job's held-out validation rows (as
    :func:`kubetune_trainer.data.prepare` shaped them for the method)."""
    if spec.dataset is not None:
        examples = _from_source(spec, spec.dataset)
        where = spec.dataset.uri
    else:
        examples = _collect(
            ((f"held-out validation row {i}", row, row) for i, row in enumerate(held_out or [], 1)),
            spec,
        )
        where = "the held-out validation rows"
    if not examples:
        raise InvalidDataError(f"evaluation data: no prompt with a reference in {where}")
    return examples


def model_input(prompt: Prompt, tokenizer: PreTrainedTokenizerBase) -> str:
    """The text the model continues, formatted as training formatted it: conversations
    through the chat template with the assistant's turn opened, plain prompts as they are."""
    if isinstance(prompt, str):
        return prompt
    if tokenizer.chat_template is None:
        raise InvalidDataError(
            "the evaluation prompts are conversations but the model has no chat template; "
            "use plain-text prompts (promptCompletion with string prompts)"
        )
    return str(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False))
