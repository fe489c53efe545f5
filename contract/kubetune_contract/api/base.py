"""Shared building blocks of the API models.

Every model of the FineTuneJob API derives from :class:`ApiModel`, so that the
whole API follows the Kubernetes conventions in one place: camelCase field names,
unknown fields refused (a typo is an error, never silently ignored), and
descriptions taken from ``Field(description=...)`` so that the generated CRD (and
so ``kubectl explain``) teaches the API.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from kubetune_contract.api.rules import DECIMAL_PATTERN, Rule

#: The error type raised for rule violations; :mod:`kubetune_contract.api.errors` expands it.
RULE_ERROR_TYPE = "kubetune_rule"

#: A fraction or small real number, written as a string because the Kubernetes API
#: conventions forbid floats in spec (``"2e-4"``, ``"0.1"``, ``"1.5"``).
Decimal = Annotated[str, StringConstraints(pattern=DECIMAL_PATTERN, max_length=32)]

#: A Kubernetes resource quantity such as ``"16Gi"``, ``"500m"`` or ``"4"``.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=32)]

#: A DNS-1123 subdomain: the shape of every Kubernetes object name. Used for secret
#: names so that a credential value pasted by mistake is refused, not stored.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[
    str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)
]

#: A short free-form string (names, columns, patterns); bounded so that the API
#: server's CEL cost estimate for rules over these fields stays small.
ShortString = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongString = Annotated[str, StringConstraints(max_length=4096)]


def _add_cel_rules(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Put a model's CEL rules into its JSON schema (and so into the CRD)."""
    if issubclass(model, ApiModel) and (validations := model.crd_validations()):
        schema["x-kubernetes-validations"] = validations


class ApiModel(BaseModel):
    """Base of every API model: unknown fields refused, cross-field rules checked.

    Attribute names are the wire names (camelCase), so a field has one name everywhere:
    in YAML, in ``kubectl explain``, in Python and in error messages.

    A model lists its cross-field constraints in ``rules`` (see :mod:`kubetune_contract.api.rules`);
    they are checked after field validation and exported as CEL into the CRD.
    """

    rules: ClassVar[tuple[Rule, ...]] = ()

    model_config = ConfigDict(
        extra="forbid", validate_default=True, json_schema_extra=_add_cel_rules
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict, without unset optional fields."""
        return self.model_dump(exclude_none=True, mode="json")

    @model_validator(mode="after")
    def _check_rules(self) -> ApiModel:
        broken = [
            (rule.field, rule.message)
            for rule in type(self).rules
            if rule.check is not None and not rule.check(self)
        ]
        if broken:
            raise PydanticCustomError(
                RULE_ERROR_TYPE,
                "{summary}",
                {"summary": "; ".join(f"{f}: {m}" for f, m in broken), "violations": broken},
            )
        return self

    @classmethod
    def crd_validations(cls) -> list[dict[str, str]]:
        """The ``x-kubernetes-validations`` entries for this model's schema."""
        return [
            {
                "rule": rule.cel,
                "message": rule.message,
                # The API server owns metadata's schema, so a path into it is not allowed.
                **({} if rule.field.startswith("metadata.") else {"fieldPath": "." + rule.field}),
                "reason": rule.reason,
            }
            for rule in cls.rules
            if rule.cel is not None
        ]
