"""Field paths of the API: spelled as in YAML, listed from the models, and the nearest
valid ones to a field the models don't know.

An unknown field is usually a real field at the wrong level (``adapter.alpha`` for
``adapter.lora.alpha``) or a misspelling (``learningrate``). Both are answered from the
model tree itself, so a field added to the API is suggested without a table to keep up.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from pydantic import BaseModel

#: The segment of a list's items in a listed path (``reward.functions[].type``).
ITEM = "[]"
#: How alike two names must be (difflib's ratio, case ignored) to count as a misspelling:
#: ``bacthSize`` and ``rnak`` are caught; ``lr`` is not taken for ``lora``.
CLOSE_SPELLING = 0.75
#: At most this many suggestions, so that ``beta`` lists each method block that has one.
MAX_SUGGESTIONS = 5

FieldPath = tuple[str, ...]


def join(parts: Sequence[str | int]) -> str:
    """``spec.env[0].name`` from ``("spec", "env", 0, "name")``."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == ITEM:
            path += ITEM
        else:
            path += f".{part}" if path else part
    return path


def _models_in(annotation: Any) -> Iterator[tuple[FieldPath, type[BaseModel]]]:
    """The models a field annotation holds, each with the list segments on the way.
    Mappings are not entered: their keys are the user's, not the API's."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield (), annotation
        return
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _models_in(args[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg)
    elif origin is list:
        for segments, model in _models_in(args[0]):
            yield (ITEM, *segments), model


@cache
def field_paths(model: type[BaseModel]) -> tuple[FieldPath, ...]:
    """Every field path under ``model``, in field order (list items as :data:`ITEM`)."""
    found: list[FieldPath] = []

    def walk(node: type[BaseModel], prefix: FieldPath, above: frozenset[type]) -> None:
        for name, info in node.model_fields.items():
            path = (*prefix, name)
            found.append(path)
            for segments, child in _models_in(info.annotation):
                if child not in above:  # a recursive model would never end
                    walk(child, (*path, *segments), above | {child})

    walk(model, (), frozenset({model}))
    return tuple(found)


def _words(name: str) -> set[str]:
    """The lower-cased words of a camelCase name."""
    return {word.lower() for word in re.split(r"(?=[A-Z])", name) if word}


def _close(name: str, candidate: str) -> bool:
    """A misspelling of ``candidate``, or its words with a qualifier left out
    (``evalSteps`` for ``evalIntervalSteps``: a field renamed, or half remembered)."""
    if difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio() >= CLOSE_SPELLING:
        return True
    words = _words(name)
    return len(words) > 1 and words <= _words(candidate)


def _common_length(first: FieldPath, second: FieldPath) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def nearest(model: type[BaseModel], location: Sequence[str | int]) -> list[list[str | int]]:
    """Valid paths nearest to the unknown field at ``location`` (from the root of ``model``).

    Candidates are fields of the same name or a close one (:func:`_close`), within the
    same top-level field (a spec field is never suggested into status). Each costs the
    steps up and down the tree from where the field was written, plus one for a different
    name; the cheapest are returned (parts for :func:`join`), with the user's own list
    indices where the paths share them. None when nothing is close.
    """
    *parent, name = location
    if not isinstance(name, str):
        return []
    where = tuple(ITEM if isinstance(part, int) else part for part in parent)
    scored: list[tuple[int, FieldPath]] = []
    for path in field_paths(model):
        if where and path[0] != where[0]:
            continue
        spelling = 0 if path[-1] == name else 1 if _close(name, path[-1]) else None
        if spelling is None:
            continue
        steps = len(where) + len(path) - 1 - 2 * _common_length(where, path[:-1])
        scored.append((spelling + steps, path))
    if not scored:
        return []
    best = min(cost for cost, _ in scored)
    chosen = [path for cost, path in scored if cost == best][:MAX_SUGGESTIONS]
    return [_spelled(path, parent, where) for path in chosen]


def _spelled(path: FieldPath, parent: Sequence[str | int], where: FieldPath) -> list[str | int]:
    """``path`` with the user's list indices on the part it shares with theirs."""
    shared = _common_length(where, path)
    return [*parent[:shared], *path[shared:]]
