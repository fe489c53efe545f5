"""The ``FineTuneJob`` resource: identity, spec and status."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from kubetune_contract.api.base import ApiModel
from kubetune_contract.api.rules import Rule
from kubetune_contract.api.spec import FineTuneJobSpec
from kubetune_contract.api.status import FineTuneJobStatus

GROUP = "kubetune.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "FineTuneJob"
PLURAL = "finetunejobs"
SINGULAR = "finetunejob"
SHORT_NAMES = ("ftj",)
CATEGORIES = ("kubetune",)

#: Children are named ``<name>-<suffix>`` and Indexed Job pods get host names
#: ``<job>-<index>``: both must stay DNS labels (63 characters).
MAX_NAME_LENGTH = 52
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ObjectMeta(ApiModel):
    """The parts of metav1.ObjectMeta kubetune reads; the rest is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[
        str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=MAX_NAME_LENGTH)
    ] = Field(description=f"Job name: a DNS label of at most {MAX_NAME_LENGTH} characters.")
    namespace: str | None = Field(default=None, description="Namespace.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    uid: str | None = Field(default=None, description="Server-assigned unique id.")
    generation: int | None = Field(default=None, description="Spec generation.")


class FineTuneJob(ApiModel):
    """A declarative LLM fine-tuning run."""

    apiVersion: Literal["kubetune.io/v1alpha1"] = Field(description="kubetune.io/v1alpha1.")
    kind: Literal["FineTuneJob"] = Field(description="FineTuneJob.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: FineTuneJobSpec = Field(description="The desired fine-tuning run.")
    status: FineTuneJobStatus | None = Field(default=None, description="Observed state.")

    #: Only enforced by the CRD (Python checks the same bound on ``metadata.name`` itself).
    rules = (
        Rule(
            field="metadata.name",
            message=f"metadata.name must be a DNS label of at most {MAX_NAME_LENGTH} characters "
            "(children and pod host names derive from it)",
            cel=f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
            f"self.metadata.name.matches('{DNS_LABEL_PATTERN}')",
        ),
    )
