"""The training method and the settings block of each method."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kubetune_contract.api.base import ApiModel, Decimal, ShortString
from kubetune_contract.api.rules import Rule, is_regex
from kubetune_contract.api.sources import DataSource, ModelSource
from kubetune_contract.api.unions import block_only_with, block_required

Method = Literal["sft", "dpo", "kto", "orpo", "reward", "grpo", "rloo", "multitask"]

#: Methods whose settings live in a block of the same name in the spec.
METHOD_BLOCKS: tuple[Method, ...] = ("sft", "dpo", "kto", "orpo", "grpo", "rloo", "multitask")
#: Methods that sample completions and score them with a reward.
ONLINE_RL_METHODS: tuple[Method, ...] = ("grpo", "rloo")


class SftSpec(ApiModel):
    """Supervised fine-tuning settings."""

    completionOnlyLoss: bool = Field(
        default=True,
        description="For prompt/completion data, compute the loss on the completion only.",
    )
    assistantOnlyLoss: bool = Field(
        default=False,
        description="For conversations, compute the loss on assistant turns only (needs a chat "
        "template that marks them).",
    )


class DpoSpec(ApiModel):
    """Direct Preference Optimization settings."""

    beta: Decimal = Field(
        default="0.1", description="Strength of the pull towards the reference model."
    )
    lossType: Literal["sigmoid", "hinge", "ipo", "robust"] = Field(
        default="sigmoid", description="DPO loss variant."
    )


class KtoSpec(ApiModel):
    """Kahneman-Tversky Optimization settings."""

    beta: Decimal = Field(default="0.1", description="Strength of the pull towards the reference.")
    desirableWeight: Decimal = Field(default="1.0", description="Loss weight of desirable rows.")
    undesirableWeight: Decimal = Field(
        default="1.0", description="Loss weight of undesirable rows."
    )


class OrpoSpec(ApiModel):
    """Odds Ratio Preference Optimization settings."""

    beta: Decimal = Field(default="0.1", description="Weight of the odds-ratio term (lambda).")


class OnlineRlSpec(ApiModel):
    """Sampling settings of the online RL methods (grpo, rloo)."""

    numGenerations: Annotated[int, Field(ge=2, le=256)] = Field(
        default=4,
        description="Completions sampled per prompt; batchSize x gradientAccumulationSteps must "
        "be a multiple of it.",
    )
    maxCompletionLength: Annotated[int, Field(ge=1, le=65536)] = Field(
        default=128, description="Longest sampled completion in tokens."
    )
    temperature: Decimal = Field(default="1.0", description="Sampling temperature.")
    beta: Decimal = Field(
        default="0.0", description='KL penalty towards the reference model ("0" disables it).'
    )


class TaskSpec(ApiModel):
    """One classification task of a multitask job."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")] = Field(
        description="Task name (lower case, digits, underscores); names its head and metrics."
    )
    dataset: DataSource = Field(description="Rows with a text column and an integer label column.")
    numLabels: Annotated[int, Field(ge=2, le=100_000)] = Field(
        description="Number of classes of this task's head."
    )
    lossWeight: Decimal = Field(default="1.0", description="Weight of this task's loss.")
    textColumn: ShortString = Field(default="text", description="Column holding the input text.")
    labelColumn: ShortString = Field(default="label", description="Column holding the label.")


class MultitaskSpec(ApiModel):
    """A shared backbone with one classification head per task."""

    tasks: list[TaskSpec] = Field(
        min_length=1,
        max_length=32,
        description="The tasks trained together (names unique).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    rules = (
        Rule(
            field="tasks",
            message="task names must be unique",
            check=lambda m: len({t.name for t in m.tasks}) == len(m.tasks),
            # No CEL: the list is a map keyed by name, so the API server refuses duplicates.
        ),
    )


class SamplingSpec(ApiModel):
    """How the model samples text while generating data."""

    maxNewTokens: Annotated[int, Field(ge=1, le=8192)] = Field(
        default=128, description="Longest generated text per step, in tokens."
    )
    temperature: Decimal = Field(default="0.7", description='Sampling temperature ("0": greedy).')
    topP: Decimal = Field(default="0.95", description="Nucleus sampling probability mass.")


class SelfCritiqueSpec(ApiModel):
    """Constitutional self-critique: draft, critique against each principle, revise.

    The generated SFT rows (prompt -> revised answer) and preference rows (revised
    preferred over draft) are written to output.uri/self-critique/; the job then trains
    on them with its method (sft on the revisions, dpo on the pairs) unless generateOnly.
    """

    prompts: DataSource = Field(description="Prompts to answer (a prompt or messages column).")
    principles: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        min_length=1, max_length=32, description="The principles every answer is critiqued against."
    )
    critiqueTemplate: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        default="Principle: {principle}\nQuestion: {prompt}\nAnswer: {response}\n"
        "Critique the answer against the principle in one or two sentences.",
        description="Critique request; placeholders {principle}, {prompt}, {response}.",
    )
    revisionTemplate: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        default="Question: {prompt}\nAnswer: {response}\nCritique: {critique}\n"
        "Rewrite the answer so that it addresses the critique.",
        description="Revision request; placeholders {prompt}, {response}, {critique}, {principle}.",
    )
    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Sampling settings.")
    maxPrompts: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        default=None, description="Use at most this many prompts (default: all)."
    )
    generateOnly: bool = Field(
        default=False, description="Stop after writing the generated datasets; train nothing."
    )

    rules = (
        Rule(
            field="critiqueTemplate",
            message="critiqueTemplate must contain {principle} and {response}",
            check=lambda s: (
                "{principle}" in s.critiqueTemplate and "{response}" in s.critiqueTemplate
            ),
            cel="self.critiqueTemplate.contains('{principle}') && "
            "self.critiqueTemplate.contains('{response}')",
        ),
        Rule(
            field="revisionTemplate",
            message="revisionTemplate must contain {critique} and {response}",
            check=lambda s: (
                "{critique}" in s.revisionTemplate and "{response}" in s.revisionTemplate
            ),
            cel="self.revisionTemplate.contains('{critique}') && "
            "self.revisionTemplate.contains('{response}')",
        ),
    )


RewardFunctionType = Literal["exactMatch", "formatRegex", "lengthPenalty"]


class ExactMatchReward(ApiModel):
    """1 when the completion equals the row's reference answer, else 0."""

    referenceColumn: ShortString = Field(description="Dataset column with the reference answer.")


class FormatRegexReward(ApiModel):
    """1 when the completion matches a regular expression, else 0."""

    pattern: ShortString = Field(description="Regular expression a good completion matches.")

    rules = (
        Rule(
            field="pattern",
            message="pattern must be a valid regular expression",
            check=lambda f: is_regex(f.pattern),
        ),
    )


class LengthPenaltyReward(ApiModel):
    """Minus the distance from a target length, scaled to [-1, 0]."""

    targetLength: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        description="Ideal completion length in characters."
    )


class RewardFunction(ApiModel):
    """A built-in reward function: its type, its weight and the settings block of its type
    (the union style of :mod:`kubetune_contract.api.unions`)."""

    type: RewardFunctionType = Field(
        description="exactMatch: 1 when the completion equals a reference answer; "
        "formatRegex: 1 when the completion matches a pattern; lengthPenalty: minus the "
        "distance from a target length, scaled to [-1, 0]. Settings go in the block of the "
        "same name."
    )
    weight: Decimal = Field(default="1.0", description="Weight of this reward in the sum.")
    exactMatch: ExactMatchReward | None = Field(
        default=None, description="exactMatch settings (required with type exactMatch)."
    )
    formatRegex: FormatRegexReward | None = Field(
        default=None, description="formatRegex settings (required with type formatRegex)."
    )
    lengthPenalty: LengthPenaltyReward | None = Field(
        default=None, description="lengthPenalty settings (required with type lengthPenalty)."
    )

    rules = (
        block_required("exactMatch", "type", "exactMatch", "referenceColumn"),
        block_only_with("exactMatch", "type", ("exactMatch",)),
        block_required("formatRegex", "type", "formatRegex", "pattern"),
        block_only_with("formatRegex", "type", ("formatRegex",)),
        block_required("lengthPenalty", "type", "lengthPenalty", "targetLength"),
        block_only_with("lengthPenalty", "type", ("lengthPenalty",)),
    )


class RewardSpec(ApiModel):
    """Where the reward of grpo/rloo comes from: a reward model, functions, or both."""

    model: ModelSource | None = Field(
        default=None,
        description="A sequence-classification reward model (e.g. the merged/ output of a "
        "reward job), given like spec.model: uri, revision, credentialsSecret.",
    )
    functions: list[RewardFunction] = Field(
        default_factory=list, max_length=16, description="Built-in reward functions."
    )
