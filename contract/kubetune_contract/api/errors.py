"""Turning validation failures into ``path.to.field: message`` lines.

Every entry point that reads a FineTuneJob (``kubetune validate``, ``kubetune run``,
the operator) reports problems the same way: one line per problem, naming the field
as it is spelled in YAML and saying what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kubetune_contract.api.base import RULE_ERROR_TYPE
from kubetune_contract.api.paths import join, nearest


@dataclass(frozen=True)
class FieldError:
    """One problem with one field."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidManifest(ValueError):
    """A manifest that doesn't describe a valid object; carries every problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _unknown_field(
    model: type[BaseModel] | None, prefix: Sequence[str | int], location: Sequence[str | int]
) -> str:
    """``unknown field``, with the nearest valid paths when the model tree has any."""
    if model is None or not (found := [join([*prefix, *p]) for p in nearest(model, location)]):
        return "unknown field (check the spelling; `kubectl explain finetunejob.spec` lists fields)"
    options = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"
    return f"unknown field; did you mean {options}?"


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {error.get('input')!r}"
    if kind == "string_pattern_mismatch":
        return f"{error.get('input')!r} does not match the pattern {ctx.get('pattern')}"
    return str(error["msg"])


#: Location segments pydantic adds for members of a union of plain types.
_PLAIN_MEMBERS = ("int", "str", "float", "bool")


def _union_member(part: str | int) -> bool:
    """``Model`` for a model union; ``constrained-int``, ``literal['auto']``, ``int`` for a
    union of plain types such as ``int | Literal["auto"]``. Field names are camelCase."""
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or "-" in part or "[" in part or part in _PLAIN_MEMBERS


def field_errors(
    error: ValidationError,
    prefix: Sequence[str | int] = (),
    *,
    model: type[BaseModel] | None = None,
) -> list[FieldError]:
    """All problems in a pydantic ``ValidationError``, cross-field rules expanded.

    ``model`` is the model that was validated: given, an unknown field is answered with
    the nearest valid paths in its tree (``did you mean spec.adapter.lora.alpha?``).
    """
    found: list[FieldError] = []
    for item in error.errors():
        # Union members add their type name to the location; drop those segments.
        loc = [p for p in item["loc"] if not _union_member(p)]
        base = [*prefix, *loc]
        if item["type"] == RULE_ERROR_TYPE:
            for field, message in item["ctx"]["violations"]:
                found.append(FieldError(join([*base, *field.split(".")]), message))
        elif item["type"] == "extra_forbidden":
            found.append(FieldError(join(base), _unknown_field(model, prefix, loc)))
        else:
            found.append(FieldError(join(base), _message(item)))
    return found
