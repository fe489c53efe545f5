"""``FineTuneJobPolicy``: what a platform lets FineTuneJob authors make the operator do.

Creating a FineTuneJob makes the operator create pods on the author's behalf, with the
job's Secrets mounted. The policy bounds that: which trainer images may run, which
routing environment variables may be set (:mod:`kubetune_contract.api.environment`), which
Secrets and ServiceAccounts a job in a namespace may name, how many GPUs, nodes and
seconds a job may take, and which storage schemes its URIs may use.

It is enforced at admission and by the operator, from one definition
(:mod:`kubetune_contract.api.policy_rules`).

The policy never reads a Secret: Secrets are allowed by name per namespace, because
deciding by a Secret's labels would need read access to Secrets (RBAC has no
metadata-only verb for them) and an admission policy can read no object but its
parameters (docs/security.md).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from kubetune_contract.api.base import DNS_SUBDOMAIN_PATTERN, ApiModel

POLICY_KIND = "FineTuneJobPolicy"
POLICY_PLURAL = "finetunejobpolicies"
POLICY_SINGULAR = "finetunejobpolicy"
POLICY_SHORT_NAMES = ("ftjpolicy",)
#: The ``Accepted=False`` reason of a job the policy refuses.
POLICY_REASON = "PolicyViolation"

StorageScheme = Literal["hf", "s3", "gs", "az", "pvc", "file", "builtin"]
#: Every scheme but ``file://``, which in a pod reads the container's own files (the
#: mounted credential files among them) as data: for ``kubetune run`` on a laptop only.
DEFAULT_STORAGE_SCHEMES: tuple[StorageScheme, ...] = ("hf", "s3", "gs", "az", "pvc", "builtin")

#: ``"*"`` or an object name.
NameOrAny = Annotated[
    str,
    StringConstraints(pattern=f"^(\\*|{DNS_SUBDOMAIN_PATTERN[1:-1]})$", max_length=253),
]
ImageRef = Annotated[str, StringConstraints(pattern=r"^[^\s]+$", min_length=1, max_length=512)]
EnvPattern = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*\*?$", min_length=1, max_length=256)
]
#: Namespace (or ``"*"``) -> names. Keys are plain strings: a structural schema can't
#: constrain map keys (no patternProperties).
PerNamespace = dict[str, list[NameOrAny]]


class FineTuneJobPolicySpec(ApiModel):
    """What FineTuneJobs may ask for. Unset bounds don't bound."""

    images: list[ImageRef] = Field(
        default_factory=list,
        max_length=64,
        description="Trainer images spec.image may name: exact references (a tag or "
        "@sha256: digest), or prefixes ending in /, : or @ (a registry path, any tag or any "
        "digest of one repository). Jobs without spec.image run the operator's trainer image.",
    )
    env: list[EnvPattern] = Field(
        default_factory=list,
        max_length=128,
        description="Routing environment names (HF_*, AWS_*, proxies, PYTHON*, LD_*, ...) "
        "spec.env may set anyway: exact names or PREFIX*. Names the operator sets are never "
        "allowed.",
    )
    secrets: PerNamespace | None = Field(
        default=None,
        description='Secrets a job may name, per namespace ("*": every namespace); a name '
        '"*" allows every Secret of the namespace. Unset: any Secret of the job\'s namespace.',
    )
    serviceAccounts: PerNamespace | None = Field(
        default=None,
        description="ServiceAccounts spec.serviceAccountName may name, per namespace as "
        "secrets. Unset: any.",
    )
    maxGpus: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Most GPUs one job may use in total (gpus x nodes)."
    )
    maxNodes: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Most nodes (pods) one job may use."
    )
    maxActiveDeadlineSeconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="When set, every job must set activeDeadlineSeconds, at most this.",
    )
    storageSchemes: list[StorageScheme] = Field(
        default_factory=lambda: list(DEFAULT_STORAGE_SCHEMES),
        description="URI schemes the job's model, data and output may use (file:// reads "
        "the pod's own files, so it is left out by default).",
    )


class PolicyMeta(ApiModel):
    """The parts of metav1.ObjectMeta the operator reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Policy name (the chart's: the release's full name).")


class FineTuneJobPolicy(ApiModel):
    """A platform's bounds on FineTuneJobs (cluster-scoped; one per operator install)."""

    apiVersion: Literal["kubetune.io/v1alpha1"] = Field(description="kubetune.io/v1alpha1.")
    kind: Literal["FineTuneJobPolicy"] = Field(description="FineTuneJobPolicy.")
    metadata: PolicyMeta = Field(description="Standard object metadata.")
    spec: FineTuneJobPolicySpec = Field(
        default_factory=FineTuneJobPolicySpec, description="The bounds."
    )
