"""Every cross-field rule of the FineTuneJob models, where it sits, and which cases of
:mod:`tests.cases.manifests` it refuses.

A case belongs to a rule when the Python models refuse it with that rule's exact message
at that rule's field, so the table of cases cannot drift from the rules: a new rule
without a refused case and an accepted near miss fails the unit tier, and the cluster
tier sends the same cases to the API server, where the rule's CEL twin must give the
same verdict with the same message.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Union

from pydantic import BaseModel

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from kubetune_contract.api.base import ApiModel
from kubetune_contract.api.job import FineTuneJob
from kubetune_contract.api.rules import Rule
from tests.cases.manifests import INVALID_CASES, InvalidCase


@dataclass(frozen=True)
class RuleSite:
    """A rule and the field it names, from the object root (list items as ``[]``)."""

    path: str
    rule: Rule

    def __str__(self) -> str:
        return f"{self.path}: {self.rule.message[:40]}"

    @property
    def transition(self) -> bool:
        """An update-only rule (it compares with ``oldSelf``): no create can break it."""
        return self.rule.cel is not None and "oldSelf" in self.rule.cel


def _models(annotation: Any, suffix: str = "") -> list[tuple[type[BaseModel], str]]:
    """The models inside a field annotation, each with the path suffix of its items."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, suffix)]
    if origin is typing.Annotated:
        return _models(typing.get_args(annotation)[0], suffix)
    if origin in (Union, types.UnionType):
        return [found for arg in typing.get_args(annotation) for found in _models(arg, suffix)]
    if origin is list:
        return _models(typing.get_args(annotation)[0], suffix + "[]")
    if origin is dict:
        return _models(typing.get_args(annotation)[1], suffix + "{}")
    return []


@cache
def rule_sites() -> tuple[RuleSite, ...]:
    """Every rule of every model reachable from :class:`FineTuneJob`."""
    sites: list[RuleSite] = []

    def visit(model: type[BaseModel], path: str) -> None:
        if issubclass(model, ApiModel):
            sites.extend(RuleSite(f"{path}.{rule.field}".lstrip("."), rule) for rule in model.rules)
        for name, field in model.model_fields.items():
            for inner, suffix in _models(field.annotation):
                visit(inner, f"{path}.{name}{suffix}".lstrip("."))

    visit(FineTuneJob, "")
    return tuple(sites)


def generic(path: str) -> str:
    """``spec.env[0].name`` -> ``spec.env[].name``: the path of a rule site."""
    return re.sub(r"\[\d+\]", "[]", path)


def refusals(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """``(field, message)`` of every problem the Python models find (none: valid)."""
    try:
        parse_finetunejob(manifest)
    except InvalidManifest as invalid:
        return {(e.path, e.message) for e in invalid.errors}
    return set()


def refused_by(site: RuleSite, case: InvalidCase) -> bool:
    """Whether the Python twin of ``site``'s rule refuses ``case``."""
    if site.rule.check is None:  # CEL only: the case names its field and is server-judged
        return case.server and case.field == site.path
    return (site.path, site.rule.message) in {
        (generic(path), message) for path, message in refusals(case.manifest())
    }


def cases_of(site: RuleSite) -> list[InvalidCase]:
    return [case for case in INVALID_CASES if refused_by(site, case)]


def rule_messages(manifest: dict[str, Any]) -> set[str]:
    """The messages of the rules with a CEL twin that refuse ``manifest`` in Python:
    the API server must say each of them too."""
    served = {(site.path, site.rule.message) for site in rule_sites() if site.rule.cel}
    return {message for path, message in refusals(manifest) if (generic(path), message) in served}
