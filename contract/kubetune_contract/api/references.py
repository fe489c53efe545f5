"""Where a FineTuneJob names storage and Secrets: the fields, found once from the models.

The platform policy (:mod:`kubetune_contract.api.policy`) checks every storage URI and every
Secret a job references, and the pod render mounts every credential Secret and every
``pvc://`` claim. Listing those fields by hand in several places would let a new block
(say, an evaluation dataset with its own ``credentialsSecret``) slip past the policy, and
searching every string of a spec for ``scheme://`` would take free text (a self-critique
principle) for storage. So they are found by walking the models' types: a field marked
:class:`~kubetune_contract.api.sources.StorageUri` is a storage URI; a
``credentialsSecret`` field or a ``secretKeyRef.name`` is a Secret reference. The same
paths give Python values (:func:`values`, :func:`storage_uris`) and CEL lists
(:func:`cel_values`), so the operator and the admission policy look at exactly the same
fields.
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
from kubetune_contract.api.sources import StorageUri
from kubetune_contract.api.spec import FineTuneJobSpec

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
    storage: StorageUri | None = None
    """The storage mark of the field at the end, if it holds a storage URI."""

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


def _storage(metadata: tuple[Any, ...]) -> StorageUri | None:
    """The storage mark among a field's ``Annotated`` metadata (pydantic keeps that of a
    plain field in ``FieldInfo.metadata``, that of an optional one inside the union)."""
    return next((meta for meta in metadata if isinstance(meta, StorageUri)), None)


def _walk(
    model: type[BaseModel],
    prefix: tuple[Step, ...],
    wanted: Callable[[type, str, tuple[Any, ...]], bool],
) -> Iterator[FieldPath]:
    for name, field in model.model_fields.items():
        inner, optional, many, metadata = _unwrap(field.annotation)
        step = Step(name, optional or not field.is_required(), many)
        metadata = (*field.metadata, *metadata)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _walk(inner, (*prefix, step), wanted)
        elif wanted(model, name, metadata):
            yield FieldPath((*prefix, step), _storage(metadata))


def _is_uri(model: type, name: str, metadata: tuple[Any, ...]) -> bool:
    return _storage(metadata) is not None


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


@dataclass(frozen=True)
class Located:
    """A value present in a spec: where it is written, and what holds it."""

    where: str
    """The field as written in YAML, e.g. ``spec.dataset.train.uri``."""
    holder: BaseModel | list[Any]
    key: str | int
    """The attribute of a model holder, the index of a list holder."""

    @property
    def value(self) -> Any:
        if isinstance(self.holder, BaseModel):
            return getattr(self.holder, str(self.key))
        return self.holder[int(self.key)]

    def replace(self, value: Any) -> None:
        """Set the value in place: only in a deep copy, as a parsed job's models are its own."""
        if isinstance(self.holder, BaseModel):
            setattr(self.holder, str(self.key), value)
        else:
            self.holder[int(self.key)] = value


def locate(spec: FineTuneJobSpec, path: FieldPath) -> list[Located]:
    """Each value present at ``path``, in spec order."""
    found: list[Located] = []

    def visit(node: BaseModel, steps: tuple[Step, ...], where: str) -> None:
        step, rest = steps[0], steps[1:]
        child = getattr(node, step.name)
        if child is None:
            return
        where = f"{where}.{step.name}"
        if step.many and not rest:
            found.extend(Located(f"{where}[{i}]", child, i) for i in range(len(child)))
        elif not rest:
            found.append(Located(where, node, step.name))
        elif step.many:
            for index, item in enumerate(child):
                visit(item, rest, f"{where}[{index}]")
        else:
            visit(child, rest, where)

    visit(spec, path.steps, "spec")
    return found


def values(spec: FineTuneJobSpec, path: FieldPath) -> list[tuple[str, str]]:
    """``(field as written in YAML, value)`` for each value present at ``path``."""
    return [(found.where, found.value) for found in locate(spec, path)]


@dataclass(frozen=True)
class StoredUri:
    """One storage URI present in a spec."""

    found: Located
    mark: StorageUri

    @property
    def uri(self) -> str:
        return str(self.found.value)


def storage_uris(spec: FineTuneJobSpec) -> list[StoredUri]:
    """Every storage URI present in ``spec``, found by the fields' types (in the order of
    :func:`uri_fields`, list items in list order)."""
    return [
        StoredUri(found, path.storage)
        for path in uri_fields()
        if path.storage is not None
        for found in locate(spec, path)
    ]


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
