"""``TrainerConfig``: the resolved, self-contained input of one trainer run.

The operator renders it into a ConfigMap and ``kubetune run`` renders it in memory;
the trainer validates it again on start. It carries the resolved spec
(:mod:`kubetune_contract.api.resolved`: every defaultable block filled, ``precision: auto``
decided where the spec tells the GPU), so the trainer never re-applies defaults of its
own, plus what the trainer can't know from the spec: which job it is and the digest of
the spec it was rendered from.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kubetune_contract.api.base import ApiModel
from kubetune_contract.api.resolved import ResolvedSpec

TRAINER_CONFIG_KIND = "TrainerConfig"


class JobIdentity(ApiModel):
    """Which FineTuneJob a trainer run belongs to."""

    name: str = Field(description="FineTuneJob name.")
    namespace: str | None = Field(default=None, description="Namespace (none for kubetune run).")
    uid: str | None = Field(default=None, description="FineTuneJob uid.")


class TrainerConfig(ApiModel):
    """Everything a trainer process needs, in one document."""

    apiVersion: Literal["kubetune.io/v1alpha1"] = Field(
        default="kubetune.io/v1alpha1", description="kubetune.io/v1alpha1."
    )
    kind: Literal["TrainerConfig"] = Field(default="TrainerConfig", description="TrainerConfig.")
    job: JobIdentity = Field(description="The job this run belongs to.")
    specDigest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] = Field(
        description="sha256 of the canonical JSON of the FineTuneJob's spec as validated "
        "(schema defaults included, before render's resolution), recorded in the result "
        "manifest: the job's identity does not change when render learns to resolve more."
    )
    spec: ResolvedSpec = Field(description="The resolved spec the trainer runs.")
