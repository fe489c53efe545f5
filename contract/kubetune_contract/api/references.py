"""Where a FineTuneJob names storage and Secrets: the fields, found once from the models.

The platform policy (:mod:`kubetune_contract.api.policy`) checks every storage URI and every
Secret a job references, and the pod render mounts every credential Secret. Listing
those fields by hand in three places would let a new block (say, an evaluation dataset
with its own ``credentialsSecret``) slip past the policy, so they are found by walking
the models' types: a field typed as a model, dataset or output URI is a storage URI; a
``credentialsSecret`` field or a ``secretKeyRef.name`` is a Secret reference. The same
paths give Python values (:func:`values`) and CEL lists (:func:`cel_values`), so the
operator and the admission policy look at exactly the same fields.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Union

from pydantic import BaseModel

from kubetune_contract.api.infrastructure import SecretKeyRef
from kubetune_contract.api.sources import DATA_URI_PATTERN, MODEL_URI_PATTERN, OUTPUT_URI_PATTERN
from kubetune_contract.api.spec import FineTuneJobSpec

_URI_PATTERNS = frozenset({MODEL_URI_PATTERN, DATA_URI_PATTERN, OUTPUT_URI_PATTERN})
CREDENTIALS_FIELD = "credentialsSecret"


@dataclass(frozen=True)
class Step:
    """One field on the way from the spec to a value."""

    name: str
    optional: bool
    """The field may be absent (CEL needs ``has()``)."""
    many: bool
    """The field is a list; the path continues in each element."""


@dataclass(frozen=True)
class FieldPath:
    """A path from ``spec`` to a string field, e.g. ``dataset.validation.uri``."""

    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return "spec." + ".".join(s.name + ("[]" if s.many else "") for s in self.steps)


def _unwrap(annotation: Any) -> tuple[Any, bool, bool, tuple[Any, ...]]:
    """(inner type, optional, list, ``Annotated`` metadata) of a field annotation."""
    optional = many = False
    metadata: tuple[Any, ...] = ()
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else annotation
        origin = typing.get_origin(annotation)
    if origin is list:
        many = True
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = tuple(extra)
    return annotation, optional, many, metadata


def _pattern(metadata: tuple[Any, ...]) -> str | None:
    """The string pattern among a field's constraints (pydantic keeps those of a plain
    field in ``FieldInfo.metadata``, those of an optional one inside the union)."""
    for meta in metadata:
        if getattr(meta, "pattern", None):
            return str(meta.pattern)
    return None


def _walk(
    model: type[BaseModel],
    prefix: tuple[Step, ...],
    wanted: Callable[[type, str, tuple[Any, ...]], bool],
) -> Iterator[FieldPath]:
    for name, field in model.model_fields.items():
        inner, optional, many, metadata = _unwrap(field.annotation)
        step = Step(name, optional or not field.is_required(), many)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _walk(inner, (*prefix, step), wanted)
        elif wanted(model, name, (*field.metadata, *metadata)):
            yield FieldPath((*prefix, step))


def _is_uri(model: type, name: str, metadata: tuple[Any, ...]) -> bool:
    return _pattern(metadata) in _URI_PATTERNS


def _is_secret(model: type, name: str, metadata: tuple[Any, ...]) -> bool:
    return name == CREDENTIALS_FIELD or (model is SecretKeyRef and name == "name")


@cache
def uri_fields() -> tuple[FieldPath, ...]:
    """Every storage URI field of the spec (model, data, output, reward model...)."""
    return tuple(_walk(FineTuneJobSpec, (), _is_uri))


@cache
def secret_fields() -> tuple[FieldPath, ...]:
    """Every field of the spec that names a Secret."""
    return tuple(_walk(FineTuneJobSpec, (), _is_secret))


def values(spec: FineTuneJobSpec, path: FieldPath) -> list[tuple[str, str]]:
    """``(field as written in YAML, value)`` for each value present at ``path``."""
    found: list[tuple[str, str]] = []

    def visit(node: Any, steps: tuple[Step, ...], where: str) -> None:
        if not steps:
            found.append((where, node))
            return
        step, rest = steps[0], steps[1:]
        child = getattr(node, step.name)
        if child is None:
            return
        if step.many:
            for index, item in enumerate(child):
                visit(item, rest, f"{where}.{step.name}[{index}]")
        else:
            visit(child, rest, f"{where}.{step.name}")

    visit(spec, path.steps, "spec")
    return found


def _guards(expr: str, steps: tuple[Step, ...]) -> tuple[str, list[str]]:
    """(expression at the end of ``steps`` from ``expr``, the has() checks on the way)."""
    checks = []
    for step in steps:
        expr = f"{expr}.{step.name}"
        if step.optional:
            checks.append(f"has({expr})")
    return expr, checks


def cel_values(path: FieldPath, root: str = "object.spec") -> str:
    """A CEL list of the values present at ``path`` (at most one list on the way).

    Admission policies report the offending values, so they need the values themselves,
    not only a verdict; CEL has no flatten, hence the one-list limit, which a new nested
    list of URIs would trip here (and in the golden test) rather than pass unchecked.
    """
    lists = [i for i, s in enumerate(path.steps) if s.many]
    if len(lists) > 1:
        raise ValueError(f"{path}: more than one list on the way; cel_values can't flatten it")
    if not lists:
        value, checks = _guards(root, path.steps)
        return f"({' && '.join(checks)} ? [{value}] : [])" if checks else f"[{value}]"
    at = lists[0]
    items, outer = _guards(root, path.steps[: at + 1])
    value, inner = _guards("x", path.steps[at + 1 :])
    element = f"{items}.filter(x, {' && '.join(inner)})" if inner else items
    mapped = f"{element}.map(x, {value})"
    return f"({' && '.join(outer)} ? {mapped} : [])" if outer else mapped
