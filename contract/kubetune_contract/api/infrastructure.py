"""Where and how the training pods run: resources, scheduling, environment, tracking."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kubetune_contract.api.base import ApiModel, LongString, ObjectName, Quantity, ShortString
from kubetune_contract.api.environment import (
    cel_operator_owned,
    describe_operator_owned,
    operator_owned,
)
from kubetune_contract.api.rules import Rule

LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=317)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=256)]


class ResourcesSpec(ApiModel):
    """Compute per training node (pod)."""

    gpus: Annotated[int, Field(ge=0, le=16)] = Field(
        default=1, description="GPUs per node (nvidia.com/gpu); 0 runs on CPU."
    )
    gpuType: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None,
        description="GPU product, matched against the node label nvidia.com/gpu.product "
        "(e.g. NVIDIA-H100-80GB-HBM3).",
    )
    nodes: Annotated[int, Field(ge=1, le=256)] = Field(
        default=1,
        description="Training nodes; more than 1 runs multi-node torchrun over an Indexed Job.",
    )
    cpu: Quantity | None = Field(
        default=None,
        description='CPU request per node, e.g. "8" (never limited). Unset: 500m per GPU '
        "(one process each; 500m on CPU), a floor that schedules anywhere.",
    )
    memory: Quantity | None = Field(
        default=None,
        description='Memory request and limit per node, e.g. "64Gi" (sharedMemory counts '
        "against it). Unset: derived, as kubetune estimate prints it: per GPU 3 GiB of runtime "
        "plus one safetensors shard of the base model (at most 5 GB); a CPU job holds the whole "
        "training in memory; the limit adds sharedMemory.",
    )
    sharedMemory: Quantity = Field(
        default="8Gi", description="Size of the memory-backed /dev/shm (data loader workers, NCCL)."
    )
    ephemeralStorage: Quantity | None = Field(
        default=None, description="Local disk per node for the model cache and checkpoints."
    )


class Toleration(ApiModel):
    """A core/v1 Toleration."""

    key: LabelKey | None = Field(default=None, description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: LabelValue | None = Field(default=None, description="Taint value (with Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate (empty: all)."
    )
    tolerationSeconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )

    rules = (
        Rule(
            field="value",
            message="operator Exists takes no value",
            check=lambda t: t.operator != "Exists" or t.value is None,
            cel="self.operator != 'Exists' || !has(self.value)",
            reason="FieldValueForbidden",
        ),
    )


class SchedulingSpec(ApiModel):
    """Placement of the training pods."""

    nodeSelector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=64, description="Node labels the pods must match."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=64,
        description="Extra tolerations (the nvidia.com/gpu taint is tolerated automatically).",
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 Affinity, passed to the pods unchanged.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priorityClassName: ObjectName | None = Field(
        default=None, description="PriorityClass of the pods (preemption order)."
    )
    queueName: ObjectName | None = Field(
        default=None,
        description="Kueue LocalQueue to submit to: the Job is created suspended and Kueue "
        "admits it when quota allows.",
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the job's namespace."""

    name: ObjectName = Field(description="Secret name.")
    key: ShortString = Field(description="Key within the Secret.")


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the job's namespace."""

    name: ObjectName = Field(description="ConfigMap name.")
    key: ShortString = Field(description="Key within the ConfigMap.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from."""

    secretKeyRef: SecretKeyRef | None = Field(default=None, description="From a Secret key.")
    configMapKeyRef: ConfigMapKeyRef | None = Field(
        default=None, description="From a ConfigMap key."
    )

    rules = (
        Rule(
            field="secretKeyRef",
            message="set exactly one of secretKeyRef and configMapKeyRef",
            check=lambda s: (s.secretKeyRef is None) != (s.configMapKeyRef is None),
            cel="has(self.secretKeyRef) != has(self.configMapKeyRef)",
        ),
    )


class EnvVar(ApiModel):
    """An environment variable of the trainer container."""

    name: EnvName = Field(description="Variable name.")
    value: LongString | None = Field(
        default=None, description="Literal value (put credentials in valueFrom, never here)."
    )
    valueFrom: EnvVarSource | None = Field(
        default=None, description="Value from a Secret/ConfigMap."
    )

    rules = (
        Rule(
            field="valueFrom",
            message="set exactly one of value and valueFrom",
            check=lambda e: (e.value is None) != (e.valueFrom is None),
            cel="has(self.value) != has(self.valueFrom)",
        ),
        Rule(
            field="name",
            message=f"{describe_operator_owned()} are reserved for the operator, which sets "
            "them in every trainer pod: choose another name",
            check=lambda e: not operator_owned(e.name),
            cel=f"!{cel_operator_owned('self.name')}",
            reason="FieldValueForbidden",
        ),
    )


#: A URI with a user-info part (``scheme://user:password@host``).
_CREDENTIALS_IN_URI = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*@"


class TrackingSpec(ApiModel):
    """Experiment tracking (TensorBoard, Weights & Biases, MLflow)."""

    backend: Literal["tensorboard", "wandb", "mlflow"] = Field(
        description="Where to report metrics besides kubetune's own."
    )
    project: ShortString | None = Field(
        default=None, description="W&B project or MLflow experiment name."
    )
    uri: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="MLflow tracking URI, or a TensorBoard log URI."
    )
    credentialsSecret: ObjectName | None = Field(
        default=None,
        description="Secret with the tracking credentials (e.g. a key WANDB_API_KEY), mounted "
        "into the trainer as files.",
    )

    rules = (
        Rule(
            field="uri",
            message="tracking.uri must not carry credentials (user:password@host): put them "
            "in the Secret named by tracking.credentialsSecret (MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)",
            check=lambda t: t.uri is None or re.match(_CREDENTIALS_IN_URI, t.uri) is None,
            cel=f"!has(self.uri) || !self.uri.matches('{_CREDENTIALS_IN_URI}')",
            reason="FieldValueForbidden",
        ),
    )


class CheckpointSpec(ApiModel):
    """Checkpoints in the output store, used to resume after preemption."""

    intervalSteps: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        default=100, description="Save a checkpoint every this many optimizer steps."
    )
    keep: Annotated[int, Field(ge=1, le=100)] = Field(
        default=3, description="How many of the newest complete checkpoints to keep."
    )
