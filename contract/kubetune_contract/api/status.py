"""``FineTuneJobStatus``: what the operator observed. Written only by the operator; never
holds secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints, model_validator

from kubetune_contract.api.base import ApiModel
from kubetune_contract.api.display import eta_text, loss_text, percent_text
from kubetune_contract.api.evaluation import EvaluationResult

LifecycleConditionType = Literal[
    "Accepted", "Queued", "Running", "Succeeded", "Failed", "Suspended"
]
#: The conditions every job has, in lifecycle order (the order status lists them in).
LIFECYCLE_CONDITION_TYPES: tuple[LifecycleConditionType, ...] = get_args(LifecycleConditionType)
#: ``EvaluationPassed`` is set only for jobs with ``spec.evaluation``.
ConditionType = Literal[LifecycleConditionType, "EvaluationPassed"]
CONDITION_TYPES: tuple[ConditionType, ...] = get_args(ConditionType)
ConditionStatus = Literal["True", "False", "Unknown"]

#: The one-word summary shown by ``kubectl get ftj``: derived from the conditions.
State = Literal["Pending", "Invalid", "Queued", "Running", "Suspended", "Succeeded", "Failed"]
#: States with an outcome: the batch Job ran to its end or gave up, and nothing but an
#: edited spec changes them (TTL clean-up, events of record and metrics key on these).
FINISHED_STATES: frozenset[State] = frozenset({"Succeeded", "Failed"})
#: States a watcher may stop at: finished, or refused until someone edits the spec.
SETTLED_STATES: frozenset[State] = FINISHED_STATES | {"Invalid"}

Reason = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
]


class Condition(ApiModel):
    """A metav1.Condition."""

    type: ConditionType = Field(description="Condition type.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Reason = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="", description="Human-readable detail."
    )
    lastTransitionTime: datetime = Field(description="When status last changed.")
    observedGeneration: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The .metadata.generation this condition was set for."
    )


#: A short display string (``3.03``, ``100%``, ``1h05m``).
DisplayText = Annotated[str, StringConstraints(max_length=32)]


class ProgressDisplay(ApiModel):
    """The progress as ``kubectl get`` shows it: printer columns only read a JSON path, so
    the short strings are written beside the numbers they come from."""

    percent: DisplayText | None = Field(default=None, description="Percent done: 100%.")
    loss: DisplayText | None = Field(
        default=None, description="Latest training loss, 3 significant digits: 3.03."
    )
    eta: DisplayText | None = Field(
        default=None, description="Time to the last step: 45s, 12m, 1h05m."
    )


class Progress(ApiModel):
    """Training progress, read from the trainer's metrics while it runs."""

    step: Annotated[int, Field(ge=0)] = Field(default=0, description="Optimizer steps done.")
    totalSteps: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Optimizer steps planned."
    )
    percent: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="step / totalSteps in percent."
    )
    epoch: float | None = Field(default=None, description="Epochs done (fractional).")
    loss: float | None = Field(default=None, description="Latest training loss.")
    evalLoss: float | None = Field(default=None, description="Latest evaluation loss.")
    tokensPerSecond: float | None = Field(default=None, description="Training throughput.")
    etaSeconds: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Estimated seconds until the last step."
    )
    updatedAt: datetime | None = Field(default=None, description="When this was read.")
    display: ProgressDisplay | None = Field(
        default=None,
        description="percent, loss and ETA as short strings (kubectl get's columns); "
        "derived from the fields above.",
    )

    @model_validator(mode="after")
    def _derive_display(self) -> Progress:
        """Fill ``display`` from the numbers, so that every Progress (read from the
        trainer, the final one, one read back from an older operator's status) shows the
        same strings and none can disagree with its numbers."""
        self.display = ProgressDisplay(
            percent=percent_text(self.percent) if self.percent is not None else None,
            loss=loss_text(self.loss) if self.loss is not None else None,
            eta=eta_text(self.etaSeconds) if self.etaSeconds is not None else None,
        )
        return self


class CheckpointRecord(ApiModel):
    """A complete checkpoint in the output store."""

    step: Annotated[int, Field(ge=0)] = Field(description="Step the checkpoint was taken at.")
    uri: Annotated[str, StringConstraints(max_length=2048)] = Field(description="Where it is.")
    evalLoss: float | None = Field(default=None, description="Evaluation loss at that step.")


class Result(ApiModel):
    """Where the finished job's artifacts are, and its final metrics."""

    adapterUri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="The adapter (or full weights)."
    )
    manifestUri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="manifest.json: config, metrics, dataset hash, versions."
    )
    mergedUri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="The merged model, when output.merge is set."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, max_length=64, description="Final metrics (loss, evalLoss, ...)."
    )
    evaluation: EvaluationResult | None = Field(
        default=None, description="Base model against tuned model (spec.evaluation)."
    )


class FineTuneJobStatus(ApiModel):
    """Observed state of a FineTuneJob."""

    observedGeneration: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="The .metadata.generation last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Accepted, Queued, Running, Succeeded, Failed, Suspended; "
        "EvaluationPassed with spec.evaluation.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    state: State | None = Field(default=None, description="One-word summary of the conditions.")
    progress: Progress | None = Field(default=None, description="Training progress.")
    startTime: datetime | None = Field(default=None, description="When training first started.")
    completionTime: datetime | None = Field(default=None, description="When the job finished.")
    restarts: Annotated[int, Field(ge=0)] = Field(
        default=0, description="Times the trainer was restarted (preemptions, failures)."
    )
    suspensions: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="Times the job was suspended after training started; the trainer's "
        "resumes after these are not counted as restarts.",
    )
    checkpoints: list[CheckpointRecord] = Field(
        default_factory=list, max_length=16, description="The newest complete checkpoints."
    )
    result: Result | None = Field(default=None, description="Artifacts of a succeeded job.")
