"""Turning validation failures into ``path.to.field: message`` lines.

Every entry point that reads a FineTuneJob (``kubetune validate``, ``kubetune run``,
the operator) reports problems the same way: one line per problem, naming the field
as it is spelled in YAML and saying what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubetune_contract.api.base import RULE_ERROR_TYPE


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


def _join(parts: Sequence[str | int]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; `kubectl explain finetunejob.spec` lists fields)"
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


def field_errors(error: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """All problems in a pydantic ``ValidationError``, cross-field rules expanded."""
    found: list[FieldError] = []
    for item in error.errors():
        # Union members add their type name to the location; drop those segments.
        loc = [p for p in item["loc"] if not _union_member(p)]
        base = [*prefix, *loc]
        if item["type"] == RULE_ERROR_TYPE:
            for field, message in item["ctx"]["violations"]:
                found.append(FieldError(_join([*base, *field.split(".")]), message))
        else:
            found.append(FieldError(_join(base), _message(item)))
    return found
