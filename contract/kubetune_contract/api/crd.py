"""Generating the FineTuneJob CustomResourceDefinition from the models.

pydantic's JSON schema is turned into a *structural* OpenAPI v3 schema as the API
server requires: references inlined, ``anyOf [X, null]`` (optional fields) collapsed to
``X``, no ``title``/``additionalProperties: false``/``const``; descriptions on every
field (so ``kubectl explain`` teaches the API); CEL rules from :mod:`kubetune_contract.api.rules`
as ``x-kubernetes-validations``; ``default: {}`` on blocks whose fields all have
defaults, so that defaults inside them apply and CEL rules can rely on them.

``crds/finetunejob.yaml`` and ``crds/finetunejobpolicy.yaml`` are the committed output
of :func:`render_crd_yaml`, and the chart's ``templates/crds/`` that of
:func:`render_chart_template`; a test fails when they differ (``make crd`` regenerates them).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import BaseModel

from kubetune_contract.api.job import (
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    FineTuneJob,
)
from kubetune_contract.api.policy import (
    POLICY_KIND,
    POLICY_PLURAL,
    POLICY_SHORT_NAMES,
    POLICY_SINGULAR,
    FineTuneJobPolicy,
)
from kubetune_contract.api.policy_rules import admission_policy_spec
from kubetune_contract.api.schema_version import SCHEMA_VERSION, SCHEMA_VERSION_ANNOTATION

_DROPPED_KEYWORDS = ("title", "propertyNames", "additionalProperties")

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "State",
        "type": "string",
        "jsonPath": ".status.state",
        "description": "One-word summary of the job's conditions.",
    },
    {
        "name": "Method",
        "type": "string",
        "jsonPath": ".spec.method",
        "description": "Training method.",
    },
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".spec.model.uri",
        "description": "Base model URI.",
    },
    {
        "name": "Progress",
        "type": "string",
        "jsonPath": ".status.progress.display.percent",
        "description": "Percent of the planned optimizer steps done.",
    },
    {
        "name": "Loss",
        "type": "string",
        "jsonPath": ".status.progress.display.loss",
        "description": "Latest training loss (3 significant digits).",
    },
    {
        "name": "ETA",
        "type": "string",
        "jsonPath": ".status.progress.display.eta",
        "description": "Estimated time to the last step.",
    },
    {
        "name": "Evaluation",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="EvaluationPassed")].reason',
        "description": "The evaluation's verdict (GatePassed, GateFailed, Evaluated, "
        "EvaluationFailed, Pending), with spec.evaluation.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _defaults_of(node: dict[str, Any]) -> dict[str, Any]:
    """The object the API server would build from ``{}`` by applying nested defaults.

    A block defaulted to ``{}`` would be checked against its CEL rules before its own
    fields are defaulted, so its default spells those fields out.
    """
    return {
        name: prop["default"]
        for name, prop in node.get("properties", {}).items()
        if "default" in prop
    }


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    """Recursively rewrite one pydantic JSON-schema node into a structural schema node."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # the field's own description and default win
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:
            return _int_or_string(node, options, defs)
        if len(options) != 1:
            raise ValueError(f"unions are not structural: {options}")
        option = options[0]
        if "$ref" in option:
            option = defs[option["$ref"].rsplit("/", 1)[-1]]
        node = {**option, **node}
        if node.get("default", 0) is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    additional = node.get("additionalProperties")
    keep_map_values = isinstance(additional, dict)
    for key in _DROPPED_KEYWORDS:
        node.pop(key, None)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node["type"] = "object"
    elif keep_map_values:
        node["additionalProperties"] = _structural(additional, defs)
    if "properties" in node:
        node["type"] = "object"
        required = set(node.get("required", []))
        properties = {}
        for name, prop in node["properties"].items():
            is_block = "$ref" in prop and name not in required and "default" not in prop
            converted = _structural(prop, defs)
            if is_block and "default" not in converted:
                converted["default"] = _defaults_of(converted)
            properties[name] = converted
        node["properties"] = properties
    if "items" in node:
        node["items"] = _structural(node["items"], defs)
    if node.get("default") == [] and node.get("type") == "array":
        del node["default"]
    return node


def _int_or_string(node: dict[str, Any], options: list[Any], defs: dict[str, Any]) -> Any:
    """``int | Literal[...]`` (e.g. ``batchSize: 4`` or ``"auto"``): the one union a
    structural schema allows, ``x-kubernetes-int-or-string`` with exactly
    ``anyOf: [{type: integer}, {type: string}]`` (the API server refuses any other
    keyword inside). The value checks sit beside it, where each applies to one kind of
    value only: ``minimum``/``maximum`` to integers, ``pattern`` to strings."""
    integer = _structural(next(o for o in options if o["type"] == "integer"), defs)
    string = _structural(next(o for o in options if o["type"] == "string"), defs)
    node = _structural(node, defs)
    node["x-kubernetes-int-or-string"] = True
    node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    node.update({k: v for k, v in integer.items() if k in ("minimum", "maximum")})
    if "enum" in string:
        node["pattern"] = "^(" + "|".join(re.escape(str(v)) for v in string["enum"]) + ")$"
    return node


def openapi_schema(model: type[BaseModel] = FineTuneJob) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (a resource: FineTuneJob or its policy)."""
    raw = model.model_json_schema(mode="validation")
    defs = raw.pop("$defs", {})
    schema = _structural(raw, defs)
    # The API server owns metadata; a CRD may only describe it as an object.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def _definition(
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    scope: str,
    version: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            # What the operator checks before it acts (kubetune_contract.api.schema_version).
            "annotations": {SCHEMA_VERSION_ANNOTATION: str(SCHEMA_VERSION)},
            "labels": {
                "app.kubernetes.io/name": "kubetune",
                "app.kubernetes.io/part-of": "kubetune",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": list(CATEGORIES),
            },
            "versions": [{"name": VERSION, "served": True, "storage": True, **version}],
        },
    }


def crd() -> dict[str, Any]:
    """The FineTuneJob CustomResourceDefinition manifest."""
    return _definition(
        KIND,
        PLURAL,
        SINGULAR,
        SHORT_NAMES,
        "Namespaced",
        {
            "subresources": {"status": {}},
            "additionalPrinterColumns": PRINTER_COLUMNS,
            "schema": {"openAPIV3Schema": openapi_schema()},
        },
    )


def policy_crd() -> dict[str, Any]:
    """The FineTuneJobPolicy CustomResourceDefinition: cluster-scoped, so that only a
    cluster administrator (the platform) can write the bounds of every namespace."""
    return _definition(
        POLICY_KIND,
        POLICY_PLURAL,
        POLICY_SINGULAR,
        POLICY_SHORT_NAMES,
        "Cluster",
        {"schema": {"openAPIV3Schema": openapi_schema(FineTuneJobPolicy)}},
    )


#: ``kubetune crd --kind`` choices: each kind's CRD and the file it is committed as.
CRDS = {KIND: (crd, "finetunejob.yaml"), POLICY_KIND: (policy_crd, "finetunejobpolicy.yaml")}


#: Strings a YAML 1.2 parser (the API server's) would read as numbers, e.g. ``2e-4``.
_NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


class _CrdDumper(yaml.SafeDumper):
    """Quotes number-like strings: PyYAML (YAML 1.1) leaves ``2e-4`` bare, Go reads a float."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if _NUMBER_LIKE.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CrdDumper.add_representer(str, _represent_str)


def dump_yaml(document: Any) -> str:
    """YAML as the API server reads it back (number-like strings quoted)."""
    return yaml.dump(document, Dumper=_CrdDumper, sort_keys=False, width=100, allow_unicode=True)


def render_crd_yaml(kind: str = KIND) -> str:
    """The CRD of ``kind`` as YAML, exactly as committed in ``crds/`` (see :data:`CRDS`)."""
    command = "kubetune crd" if kind == KIND else f"kubetune crd --kind {kind}"
    header = (
        f"# Generated by `{command}` from kubetune_contract.api; do not edit (run `make crd`).\n"
    )
    return header + dump_yaml(CRDS[kind][0]())


#: The chart's guard around each CRD template, and where the keep annotation goes in.
_CHART_GUARD = ("{{- if .Values.crds.enabled }}\n", "{{- end }}\n")
_CHART_ANNOTATIONS = "  annotations:\n"
_CHART_KEEP = (
    "    {{- if .Values.crds.keep }}\n"
    "    # helm uninstall leaves the CRD, and so every FineTuneJob, in place.\n"
    "    helm.sh/resource-policy: keep\n"
    "    {{- end }}\n"
)


def chart_template(document: str) -> str:
    """A CRD's YAML as a chart template (``templates/crds/``): inside the ``crds.enabled``
    guard, with Helm's keep annotation under ``crds.keep``, otherwise unchanged. A
    template, not the chart's ``crds/`` directory, because Helm installs ``crds/`` once
    and never upgrades it."""
    if document.count(_CHART_ANNOTATIONS) != 1:
        raise ValueError("a CRD template needs exactly one metadata.annotations block")
    guarded = document.replace(_CHART_ANNOTATIONS, _CHART_ANNOTATIONS + _CHART_KEEP)
    return _CHART_GUARD[0] + guarded + _CHART_GUARD[1]


def render_chart_template(kind: str = KIND) -> str:
    """The CRD of ``kind`` as committed in the chart's ``templates/crds/``."""
    return chart_template(render_crd_yaml(kind))


def render_admission_rules_yaml() -> str:
    """The FineTuneJobPolicy's admission CEL, as committed in the chart's
    ``admission/rules.yaml`` (the ValidatingAdmissionPolicy template includes it)."""
    header = "# Generated by `kubetune crd --admission-rules`; do not edit (run `make crd`).\n"
    return header + dump_yaml(admission_policy_spec())
