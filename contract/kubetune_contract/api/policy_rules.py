"""The FineTuneJobPolicy's rules, each written once in Python and once in CEL.

* At admission, a ValidatingAdmissionPolicy whose parameter object is the
  FineTuneJobPolicy (the chart installs both) runs the CEL of
  :func:`admission_policy_spec`, so ``kubectl apply``, Argo CD and API clients are all
  refused up front;
* the operator runs the Python twins (:func:`violations`) before it creates or changes a
  job's children, for clusters where the admission policy is off: the job gets
  ``Accepted=False`` with reason ``PolicyViolation`` and no pods.

Both word a refusal the same way: the field, what is wrong, and the policy's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubetune_contract.api.environment import allowed_by, cel_allowed_by, cel_routing, routing
from kubetune_contract.api.errors import FieldError
from kubetune_contract.api.job import FineTuneJob
from kubetune_contract.api.policy import FineTuneJobPolicy, PerNamespace
from kubetune_contract.api.references import (
    FieldPath,
    Step,
    cel_values,
    secret_fields,
    uri_fields,
    values,
)
from kubetune_contract.api.spec import FineTuneJobSpec


def image_allowed(image: str, allowed: list[str]) -> bool:
    """Exact references, or prefixes ending in a separator (``/``, ``:``, ``@``) so that
    ``registry.example/ml/`` can't match ``registry.example/ml-evil/x``."""
    return any(image.startswith(a) if a.endswith(("/", ":", "@")) else image == a for a in allowed)


def _cel_image_allowed(image: str) -> str:
    return (
        "variables.images.exists(a, (a.endsWith('/') || a.endsWith(':') || "
        f"a.endsWith('@')) ? {image}.startsWith(a) : {image} == a)"
    )


def name_allowed(name: str, namespace: str, allowed: PerNamespace | None) -> bool:
    """Whether ``allowed`` (per namespace, see :class:`FineTuneJobPolicySpec`) lets a job
    in ``namespace`` name ``name``."""
    if allowed is None:
        return True
    names = [*allowed.get(namespace, []), *allowed.get("*", [])]
    return "*" in names or name in names


def _cel_name_allowed(name: str, field: str) -> str:
    ns = "request.namespace"
    allowed = f"params.spec.{field}"
    return (
        f"!has({allowed}) || "
        f"({ns} in {allowed} && {allowed}[{ns}].exists(n, n == '*' || n == {name})) || "
        f"('*' in {allowed} && {allowed}['*'].exists(n, n == '*' || n == {name}))"
    )


def scheme_of(uri: str) -> str:
    return uri.split("://", 1)[0]


def _policy_name() -> str:
    return "FineTuneJobPolicy ' + params.metadata.name + '"


def _listing(expr: str) -> str:
    """CEL for ``", ".join(expr)`` with ``none`` for an empty list."""
    return f"(size({expr}) == 0 ? 'none' : {expr}.join(', '))"


@dataclass(frozen=True)
class Validation:
    """One admission validation: ``expression`` must hold; ``message`` (CEL) says why not."""

    expression: str
    message: str


@dataclass(frozen=True)
class Check:
    """One policy rule: its Python twin returns the problems of a job."""

    python: Callable[[FineTuneJob, FineTuneJobPolicy], list[FieldError]]
    admission: tuple[Validation, ...]


def _in_policy(policy: FineTuneJobPolicy) -> str:
    return f"FineTuneJobPolicy {policy.metadata.name}"


def _join(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _image(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    image = job.spec.image
    if image is None or image_allowed(image, policy.spec.images):
        return []
    return [
        FieldError(
            "spec.image",
            f"{image} is not an allowed trainer image ({_in_policy(policy)} allows "
            f"{_join(policy.spec.images)}; leave spec.image unset for the operator's image)",
        )
    ]


_IMAGE = Check(
    _image,
    (
        Validation(
            f"!has(object.spec.image) || {_cel_image_allowed('object.spec.image')}",
            "'spec.image: ' + object.spec.image + ' is not an allowed trainer image ("
            + _policy_name()
            + " allows ' + "
            + _listing("variables.images")
            + " + '; leave spec.image unset for the operator\\'s image)'",
        ),
    ),
)


def _blocked_env(spec: FineTuneJobSpec, allowed: list[str]) -> list[str]:
    return [e.name for e in spec.env if routing(e.name) and not allowed_by(e.name, allowed)]


def _env(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    blocked = _blocked_env(job.spec, policy.spec.env)
    if not blocked:
        return []
    return [
        FieldError(
            "spec.env",
            f"{', '.join(blocked)} route credentials, code or peers and are not allowed by "
            f"{_in_policy(policy)} (it allows {_join(policy.spec.env)})",
        )
    ]


_ENV = Check(
    _env,
    (
        Validation(
            "size(variables.blockedEnv) == 0",
            "'spec.env: ' + variables.blockedEnv.join(', ') + ' route credentials, code or "
            f"peers and are not allowed by {_policy_name()} (it allows ' + "
            f"{_listing('variables.env')} + ')'",
        ),
    ),
)


def _named(
    field: str, kind: str, paths: tuple[FieldPath, ...]
) -> tuple[Callable[[FineTuneJob, FineTuneJobPolicy], list[FieldError]], tuple[Validation, ...]]:
    """The check that every name at ``paths`` is allowed by ``params.spec.<field>``."""

    def python(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
        allowed: PerNamespace | None = getattr(policy.spec, field)
        namespace = job.metadata.namespace or ""
        problems = []
        for path in paths:
            for where, name in values(job.spec, path):
                if not name_allowed(name, namespace, allowed):
                    problems.append(
                        FieldError(
                            where,
                            f"{kind} {name} is not allowed in namespace {namespace} by "
                            f"{_in_policy(policy)} (allowed there: "
                            f"{_join(_allowed_in(allowed or {}, namespace))})",
                        )
                    )
        return problems

    validations = []
    for path in paths:
        found = cel_values(path)
        ok = _cel_name_allowed("v", field)
        ns = "request.namespace"
        allowed = f"params.spec.{field}"
        there = (
            f"({ns} in {allowed} ? {allowed}[{ns}] : []) + ('*' in {allowed} ? {allowed}['*'] : [])"
        )
        validations.append(
            Validation(
                f"{found}.all(v, {ok})",
                f"'{path}: {kind} ' + {found}.filter(v, !({ok})).join(', ') + ' is not "
                f"allowed in namespace ' + {ns} + ' by {_policy_name()} (allowed there: ' + "
                f"{_listing(f'({there})')} + ')'",
            )
        )
    return python, tuple(validations)


def _allowed_in(allowed: PerNamespace, namespace: str) -> list[str]:
    return [*allowed.get(namespace, []), *allowed.get("*", [])]


_SECRETS = Check(*_named("secrets", "Secret", secret_fields()))


_SERVICE_ACCOUNT = FieldPath((Step("serviceAccountName", optional=True, many=False),))
_SERVICE_ACCOUNTS = Check(*_named("serviceAccounts", "ServiceAccount", (_SERVICE_ACCOUNT,)))


def _gpus(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    resources, bound = job.spec.resources, policy.spec.maxGpus
    total = resources.gpus * resources.nodes
    if bound is None or total <= bound:
        return []
    return [
        FieldError(
            "spec.resources.gpus",
            f"{resources.gpus} GPUs x {resources.nodes} nodes = {total} GPUs, more than "
            f"{_in_policy(policy)} allows per job (maxGpus {bound})",
        )
    ]


_GPUS_CEL = "object.spec.resources.gpus * object.spec.resources.nodes"
_GPUS = Check(
    _gpus,
    (
        Validation(
            f"!has(params.spec.maxGpus) || {_GPUS_CEL} <= params.spec.maxGpus",
            "'spec.resources.gpus: ' + string(object.spec.resources.gpus) + ' GPUs x ' + "
            "string(object.spec.resources.nodes) + ' nodes = ' + string("
            + _GPUS_CEL
            + ") + ' GPUs, more than "
            + _policy_name()
            + " allows per job (maxGpus ' + string(params.spec.maxGpus) + ')'",
        ),
    ),
)


def _nodes(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    nodes, bound = job.spec.resources.nodes, policy.spec.maxNodes
    if bound is None or nodes <= bound:
        return []
    return [
        FieldError(
            "spec.resources.nodes",
            f"{nodes} nodes, more than {_in_policy(policy)} allows per job (maxNodes {bound})",
        )
    ]


_NODES = Check(
    _nodes,
    (
        Validation(
            "!has(params.spec.maxNodes) || object.spec.resources.nodes <= params.spec.maxNodes",
            "'spec.resources.nodes: ' + string(object.spec.resources.nodes) + ' nodes, more "
            "than " + _policy_name() + " allows per job (maxNodes ' + "
            "string(params.spec.maxNodes) + ')'",
        ),
    ),
)


def _deadline(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    seconds, bound = job.spec.activeDeadlineSeconds, policy.spec.maxActiveDeadlineSeconds
    if bound is None or (seconds is not None and seconds <= bound):
        return []
    return [
        FieldError(
            "spec.activeDeadlineSeconds",
            f"{_in_policy(policy)} requires activeDeadlineSeconds of at most {bound} "
            f"(got {seconds if seconds is not None else 'none'})",
        )
    ]


_DEADLINE = Check(
    _deadline,
    (
        Validation(
            "!has(params.spec.maxActiveDeadlineSeconds) || "
            "(has(object.spec.activeDeadlineSeconds) && "
            "object.spec.activeDeadlineSeconds <= params.spec.maxActiveDeadlineSeconds)",
            "'spec.activeDeadlineSeconds: "
            + _policy_name()
            + " requires activeDeadlineSeconds of at most ' + "
            "string(params.spec.maxActiveDeadlineSeconds) + ' (got ' + "
            "(has(object.spec.activeDeadlineSeconds) ? "
            "string(object.spec.activeDeadlineSeconds) : 'none') + ')'",
        ),
    ),
)


def _schemes(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    allowed = policy.spec.storageSchemes
    return [
        FieldError(
            where,
            f"scheme {scheme_of(uri)}:// is not allowed by {_in_policy(policy)} "
            f"(storageSchemes: {_join(list(allowed))})",
        )
        for path in uri_fields()
        for where, uri in values(job.spec, path)
        if scheme_of(uri) not in allowed
    ]


def _scheme_validation(path: FieldPath) -> Validation:
    found = cel_values(path)
    ok = "variables.schemes.exists(s, v.startsWith(s + '://'))"
    return Validation(
        f"{found}.all(v, {ok})",
        f"'{path}: scheme ' + {found}.filter(v, !({ok})).map(v, v.split('://')[0] + '://')"
        f".join(', ') + ' is not allowed by {_policy_name()} (storageSchemes: ' + "
        f"{_listing('variables.schemes')} + ')'",
    )


_SCHEMES = Check(_schemes, tuple(_scheme_validation(p) for p in uri_fields()))

CHECKS: tuple[Check, ...] = (
    _IMAGE,
    _ENV,
    _SECRETS,
    _SERVICE_ACCOUNTS,
    _GPUS,
    _NODES,
    _DEADLINE,
    _SCHEMES,
)


def violations(job: FineTuneJob, policy: FineTuneJobPolicy) -> list[FieldError]:
    """Everything ``policy`` refuses about ``job`` (empty: allowed)."""
    return [problem for check in CHECKS for problem in check.python(job, policy)]


#: The ValidatingAdmissionPolicy's ``spec.variables``: the policy's lists, ``[]`` where
#: unset (the API server drops empty lists from stored objects, so ``has()`` is needed),
#: and the routing names the job sets without the policy's leave.
ADMISSION_VARIABLES: tuple[tuple[str, str], ...] = (
    ("images", "has(params.spec.images) ? params.spec.images : []"),
    ("env", "has(params.spec.env) ? params.spec.env : []"),
    ("schemes", "has(params.spec.storageSchemes) ? params.spec.storageSchemes : []"),
    (
        "blockedEnv",
        "!has(object.spec.env) ? [] : object.spec.env.filter(e, {routing} && !({allowed}))"
        ".map(e, e.name)".format(
            routing=cel_routing("e.name"), allowed=cel_allowed_by("e.name", "variables.env")
        ),
    ),
)


def admission_policy_spec() -> dict[str, Any]:
    """The generated part of the ValidatingAdmissionPolicy: ``variables`` and
    ``validations`` (the chart ships them in ``charts/kubetune/admission/rules.yaml``; a
    test checks the file is current)."""
    return {
        "variables": [{"name": n, "expression": e} for n, e in ADMISSION_VARIABLES],
        "validations": [
            {"expression": v.expression, "messageExpression": v.message, "reason": "Forbidden"}
            for check in CHECKS
            for v in check.admission
        ],
    }
