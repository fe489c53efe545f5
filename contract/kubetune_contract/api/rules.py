"""Cross-field rules, each written once with its CEL twin.

A rule belongs to one model (its ``owner``) and names the field it is about. The
same rule object is used twice:

* in Python, by :class:`kubetune_contract.api.base.ApiModel`'s validator, so ``kubetune
  validate``, ``kubetune run`` and the operator refuse a bad spec with ``path.to.field: message``;
* in the generated CRD, as an ``x-kubernetes-validations`` entry on the owner's
  schema, so the API server refuses the same manifest at ``kubectl apply`` with the
  same message.

Rules that only make sense on update (immutable fields) have no Python check, and
a few checks CEL can't express (a regular expression that must compile) have no CEL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The shape of decimal strings (``kubetune_contract.api.base.Decimal``).
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


def cel_decimal(field: str, condition: str) -> str:
    """CEL for "``condition`` holds for the decimal string ``field``" (``condition`` uses
    ``{x}`` for the value). A malformed string passes here: the schema's pattern already
    refuses it with a clearer message than CEL's failed ``double()`` conversion."""
    value = f"double(self.{field})"
    return f"!self.{field}.matches(r'{DECIMAL_PATTERN}') || ({condition.format(x=value)})"


@dataclass(frozen=True)
class Rule:
    """A cross-field constraint of one model."""

    field: str
    """Dotted path of the offending field, relative to the owner model (camelCase)."""
    message: str
    """What is wrong and what is allowed; names the fields involved."""
    check: Callable[[Any], bool] | None = None
    """Python predicate on the owner model; ``None`` for update-only (transition) rules."""
    cel: str | None = None
    """The same rule in CEL over the owner's schema (``self``), or ``None`` if inexpressible."""
    reason: str = "FieldValueInvalid"
    """CRD validation reason (FieldValueInvalid, FieldValueRequired, FieldValueForbidden)."""


def exclusive(first: str, second: str) -> Rule:
    """``first`` and ``second`` (optional fields of one model) may not both be set."""
    return Rule(
        field=second,
        message=f"{first} and {second} are mutually exclusive: set at most one of them",
        check=lambda m: getattr(m, first) is None or getattr(m, second) is None,
        cel=f"!(has(self.{first}) && has(self.{second}))",
        reason="FieldValueForbidden",
    )


def fraction_below_one(field: str, *, allow_zero: bool, optional: bool = False) -> Rule:
    """A decimal-string field must be a fraction in [0, 1) (or (0, 1) without zero)."""
    lower = "[0, 1)" if allow_zero else "(0, 1)"
    op = ">=" if allow_zero else ">"

    def check(model: Any) -> bool:
        value = getattr(model, field)
        if value is None:
            return optional
        number = float(value)
        return (number >= 0 if allow_zero else number > 0) and number < 1

    cel = cel_decimal(field, f"{{x}} {op} 0.0 && {{x}} < 1.0")
    if optional:
        cel = f"!has(self.{field}) || ({cel})"
    return Rule(field=field, message=f"{field} must be a fraction in {lower}", check=check, cel=cel)


def is_regex(pattern: str) -> bool:
    """Whether ``pattern`` compiles as a Python regular expression (CEL can't tell)."""
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True
