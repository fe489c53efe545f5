"""``spec.evaluation``: did the fine-tune help? Generation-based evaluation after training.

The trainer answers the evaluation prompts with the base model and with the tuned model
(the published result), scores both against the references with the metrics chosen
here, and reports metric -> (base, tuned, delta) in ``status.result.evaluation``. The
``gate`` turns those numbers into a verdict (condition ``EvaluationPassed``) that a
pipeline can refuse to promote an adapter on; a job whose gate fails still ends
``Succeeded``, because its training did.

The status side (:class:`EvaluationResult`) is here too, so the whole block is read in
one place.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, StringConstraints

from kubetune_contract.api.base import ApiModel, Decimal, ShortString
from kubetune_contract.api.rules import Rule, is_regex
from kubetune_contract.api.sources import DataSource

EvaluationMetric = Literal[
    "exactMatch",
    "normalizedExactMatch",
    "contains",
    "regexMatch",
    "tokenF1",
    "rougeL",
    "rewardScore",
    "winRate",
]
EVALUATION_METRICS: tuple[EvaluationMetric, ...] = get_args(EvaluationMetric)
#: Metrics that need the job's reward model (``reward.model``) as the judge.
REWARD_METRICS: tuple[EvaluationMetric, ...] = ("rewardScore", "winRate")
DEFAULT_METRICS: tuple[EvaluationMetric, ...] = (
    "exactMatch",
    "normalizedExactMatch",
    "tokenF1",
    "rougeL",
)
#: Methods whose result is not a text generator (a reward model, classification heads).
NON_GENERATIVE_METHODS = ("reward", "multitask")

#: A decimal that may be negative (a gate may allow the tuned model to be slightly worse).
SIGNED_DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"
SignedDecimal = Annotated[str, StringConstraints(pattern=SIGNED_DECIMAL_PATTERN, max_length=32)]


class GenerationSpec(ApiModel):
    """How both models answer the evaluation prompts."""

    maxNewTokens: Annotated[int, Field(ge=1, le=8192)] = Field(
        default=64, description="Longest answer per prompt, in tokens."
    )
    temperature: Decimal = Field(
        default="0",
        description='Sampling temperature; "0" (the default) is greedy decoding, so a rerun '
        "gives the same answers.",
    )
    topP: Decimal = Field(
        default="1.0", description="Nucleus sampling probability mass (with temperature > 0)."
    )
    batchSize: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=8, description="Prompts generated for at once (left-padded batches)."
    )


class GateThreshold(ApiModel):
    """One metric's bar: the tuned model must reach it, or the gate fails."""

    metric: EvaluationMetric = Field(description="The metric (one of evaluation.metrics).")
    minDelta: SignedDecimal | None = Field(
        default=None,
        description='Tuned must be at least base + minDelta, e.g. "0.05"; a negative value '
        "allows a small regression.",
    )
    min: SignedDecimal | None = Field(
        default=None, description='Tuned must be at least this value, e.g. "0.6".'
    )

    rules = (
        Rule(
            field="minDelta",
            message="a gate threshold needs minDelta and/or min",
            check=lambda g: g.minDelta is not None or g.min is not None,
            cel="has(self.minDelta) || has(self.min)",
            reason="FieldValueRequired",
        ),
    )


class EvaluationSpec(ApiModel):
    """Generation-based evaluation of the tuned model against its base model."""

    dataset: DataSource | None = Field(
        default=None,
        description="Prompts with reference answers (messages, promptCompletion, preference or "
        "any format with a prompt). Default: the job's held-out validation rows "
        "(dataset.validation or dataset.validationSplit).",
    )
    referenceColumn: ShortString | None = Field(
        default=None,
        description="Column holding the reference answer (default: the completion, the last "
        "assistant message, or the chosen answer of a preference row).",
    )
    maxPrompts: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None,
        description="Evaluate at most this many prompts, the first ones (default: all).",
    )
    generation: GenerationSpec = Field(
        default_factory=GenerationSpec, description="Generation settings of both models."
    )
    metrics: list[EvaluationMetric] = Field(
        default=list(DEFAULT_METRICS),
        min_length=1,
        max_length=len(EVALUATION_METRICS),
        description="exactMatch (answer equals the reference), normalizedExactMatch (after "
        "lower-casing and dropping punctuation, articles and extra spaces), contains "
        "(the normalized reference occurs in the answer), regexMatch (the answer matches "
        "pattern), tokenF1 (token overlap), rougeL (longest common subsequence F-measure); "
        "with reward.model: rewardScore (the reward model's mean score) and winRate "
        "(how often tuned scores above base; ties count half).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    pattern: ShortString | None = Field(
        default=None, description="Regular expression a good answer matches (regexMatch)."
    )
    gate: list[GateThreshold] = Field(
        default_factory=list,
        max_length=len(EVALUATION_METRICS),
        description="Thresholds per metric. When one is not met the job still ends Succeeded, "
        "with condition EvaluationPassed=False and the reason.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["metric"],
        },
    )

    rules = (
        Rule(
            field="metrics",
            message="metrics must be unique",
            check=lambda e: len(set(e.metrics)) == len(e.metrics),
            # No CEL: the list is a set, so the API server refuses duplicates.
        ),
        Rule(
            field="pattern",
            message="metric regexMatch needs pattern, a valid regular expression",
            check=lambda e: (
                "regexMatch" not in e.metrics or (e.pattern is not None and is_regex(e.pattern))
            ),
            cel="!('regexMatch' in self.metrics) || has(self.pattern)",
            reason="FieldValueRequired",
        ),
        Rule(
            field="gate",
            message="every gate metric must be one of evaluation.metrics",
            check=lambda e: all(g.metric in e.metrics for g in e.gate),
            cel="!has(self.gate) || self.gate.all(g, g.metric in self.metrics)",
        ),
    )


def _reward_metrics_cel() -> str:
    listed = "[" + ", ".join(f"'{m}'" for m in REWARD_METRICS) + "]"
    return f"self.evaluation.metrics.exists(m, m in {listed})"


def _has_held_out_rows(spec: Any) -> bool:
    dataset = spec.dataset
    return dataset is not None and (
        dataset.validation is not None or dataset.validationSplit is not None
    )


#: Rules of ``FineTuneJobSpec`` that tie ``evaluation`` to the other blocks.
SPEC_RULES: tuple[Rule, ...] = (
    Rule(
        field="evaluation.dataset",
        message="evaluation needs prompts: set evaluation.dataset, or hold out validation rows "
        "with dataset.validation or dataset.validationSplit",
        check=lambda s: (
            s.evaluation is None or s.evaluation.dataset is not None or _has_held_out_rows(s)
        ),
        cel="!has(self.evaluation) || has(self.evaluation.dataset) || (has(self.dataset) && "
        "(has(self.dataset.validation) || has(self.dataset.validationSplit)))",
        reason="FieldValueRequired",
    ),
    Rule(
        field="evaluation",
        message="evaluation compares generated answers: methods "
        f"{' and '.join(NON_GENERATIVE_METHODS)} produce no text generator",
        check=lambda s: s.evaluation is None or s.method not in NON_GENERATIVE_METHODS,
        cel="!has(self.evaluation) || !(self.method in "
        f"[{', '.join(repr(m) for m in NON_GENERATIVE_METHODS)}])",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="evaluation",
        message="evaluation needs a trained model: selfCritique.generateOnly trains nothing",
        check=lambda s: (
            s.evaluation is None or s.selfCritique is None or not s.selfCritique.generateOnly
        ),
        cel="!has(self.evaluation) || !has(self.selfCritique) || !self.selfCritique.generateOnly",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="evaluation.metrics",
        message=f"metrics {' and '.join(REWARD_METRICS)} need reward.model: the reward model "
        "judges both models' answers",
        check=lambda s: (
            s.evaluation is None
            or not any(m in REWARD_METRICS for m in s.evaluation.metrics)
            or (s.reward is not None and s.reward.model is not None)
        ),
        cel=f"!has(self.evaluation) || !({_reward_metrics_cel()}) || "
        "(has(self.reward) && has(self.reward.model))",
        reason="FieldValueRequired",
    ),
)


# -- status ---------------------------------------------------------------------------


class MetricComparison(ApiModel):
    """One metric on the same prompts, base model against tuned model."""

    base: float = Field(description="The base model's score.")
    tuned: float = Field(description="The tuned model's score.")
    delta: float = Field(description="tuned - base.")


class EvaluationResult(ApiModel):
    """What the evaluation after training measured."""

    prompts: Annotated[int, Field(ge=0)] = Field(description="Prompts both models answered.")
    metrics: dict[EvaluationMetric, MetricComparison] = Field(
        default_factory=dict,
        max_length=len(EVALUATION_METRICS),
        description="Metric -> base, tuned and delta.",
    )
    headline: Annotated[str, StringConstraints(max_length=256)] = Field(
        default="", description='The headline metric, e.g. "exact match 0.21 -> 0.64".'
    )
    reportUri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None, description="evaluation.md (with evaluation.png and evaluation.jsonl)."
    )
