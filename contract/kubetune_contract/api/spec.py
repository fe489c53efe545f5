"""``FineTuneJobSpec``: what the user asks for, and the rules that tie its blocks together."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kubetune_contract.api.adapter import AdapterSpec
from kubetune_contract.api.base import ApiModel, ObjectName
from kubetune_contract.api.dataset import DatasetSpec
from kubetune_contract.api.evaluation import NON_GENERATIVE_METHODS, EvaluationSpec
from kubetune_contract.api.evaluation import SPEC_RULES as EVALUATION_RULES
from kubetune_contract.api.infrastructure import (
    CheckpointSpec,
    EnvVar,
    ResourcesSpec,
    SchedulingSpec,
    TrackingSpec,
)
from kubetune_contract.api.methods import (
    METHOD_BLOCKS,
    ONLINE_RL_METHODS,
    DpoSpec,
    KtoSpec,
    Method,
    MultitaskSpec,
    OnlineRlSpec,
    OrpoSpec,
    RewardSpec,
    SelfCritiqueSpec,
    SftSpec,
)
from kubetune_contract.api.rules import Rule
from kubetune_contract.api.sources import (
    PAIRED_PREFERENCE_FORMATS,
    UNPAIRED_PREFERENCE_FORMATS,
    DatasetFormat,
    ModelSource,
    OutputSpec,
)
from kubetune_contract.api.training import TrainingSpec
from kubetune_contract.api.unions import block_only_with

#: Fields that define what is trained. Changing them mid-run would silently mix two
#: trainings in one checkpoint history, so the API server refuses it unless suspended.
IMMUTABLE_WHILE_RUNNING: tuple[str, ...] = (
    "method",
    "model",
    "adapter",
    "dataset",
    "training",
    "resources",
    "reward",
    "selfCritique",
    "output",
    *METHOD_BLOCKS,
)

_PAIRED_METHODS: tuple[Method, ...] = ("dpo", "orpo", "reward")
#: Formats without a prompt to sample from (text) or whose rows already hold the answers.
_UNSAMPLEABLE_FORMATS: tuple[DatasetFormat, ...] = ("text", "preference", "unpairedPreference")
_PREFERENCE_ONLY_FORMATS: tuple[DatasetFormat, ...] = ("preference", "unpairedPreference")
_DEFAULT_GENERATIONS = OnlineRlSpec().numGenerations


def _cel_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _formats(spec: FineTuneJobSpec) -> list[str]:
    """Formats of every data source of the spec's dataset."""
    if spec.dataset is None:
        return []
    sources = [spec.dataset.train, spec.dataset.validation]
    return [source.format for source in sources if source is not None]


def _format_rule(methods: tuple[Method, ...], allowed: tuple[DatasetFormat, ...]) -> Rule:
    """Methods in ``methods`` accept only the dataset formats in ``allowed``."""
    names = ", ".join(methods)
    cel_allowed = _cel_list(allowed)
    return Rule(
        field="dataset.train.format",
        message=f"method {names} needs dataset formats {', '.join(allowed)}: "
        "set dataset.train.format (and dataset.validation.format) to one of them",
        check=lambda s: s.method not in methods or all(f in allowed for f in _formats(s)),
        cel=f"!(self.method in {_cel_list(methods)}) || !has(self.dataset) || "
        f"(self.dataset.train.format in {cel_allowed} && (!has(self.dataset.validation) || "
        f"self.dataset.validation.format in {cel_allowed}))",
    )


def _forbidden_format_rule(
    methods: tuple[Method, ...], forbidden: tuple[DatasetFormat, ...]
) -> Rule:
    """Methods in ``methods`` can't use the dataset formats in ``forbidden``."""
    names = ", ".join(methods)
    cel_forbidden = _cel_list(forbidden)
    return Rule(
        field="dataset.train.format",
        message=f"method {names} can't use dataset formats {', '.join(forbidden)}: "
        "choose a format with prompts or conversations",
        check=lambda s: s.method not in methods or not any(f in forbidden for f in _formats(s)),
        cel=f"!(self.method in {_cel_list(methods)}) || !has(self.dataset) || "
        f"(!(self.dataset.train.format in {cel_forbidden}) && (!has(self.dataset.validation) || "
        f"!(self.dataset.validation.format in {cel_forbidden})))",
    )


def _generations_divide_batch(method: Method) -> Rule:
    """GRPO/RLOO sample ``numGenerations`` completions per prompt within one batch."""

    def generations(spec: FineTuneJobSpec) -> int:
        block: OnlineRlSpec | None = getattr(spec, method)
        return block.numGenerations if block is not None else _DEFAULT_GENERATIONS

    def check(spec: FineTuneJobSpec) -> bool:
        if spec.method != method:
            return True
        size = spec.training.batchSize
        if not isinstance(size, int):
            return False
        return size * spec.training.gradientAccumulationSteps % generations(spec) == 0

    return Rule(
        field="training.batchSize",
        message=f"method {method}: training.batchSize (a number, not auto) x "
        "training.gradientAccumulationSteps must be "
        f"a multiple of {method}.numGenerations (default {_DEFAULT_GENERATIONS})",
        check=check,
        cel=f"self.method != '{method}' || type(self.training.batchSize) == int && "
        f"(self.training.batchSize * "
        f"self.training.gradientAccumulationSteps) % (has(self.{method}) ? "
        f"self.{method}.numGenerations : {_DEFAULT_GENERATIONS}) == 0",
    )


def _immutable_while_running(field: str) -> Rule:
    """``field`` can change only while the job is (or was) suspended."""
    same = (
        f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})"
    )
    return Rule(
        field=field,
        message=f"{field} can't change while the job runs: set suspend: true first, "
        "then change it (the change applies on resume)",
        cel=f"self.suspend || oldSelf.suspend || ({same})",
        reason="FieldValueForbidden",
    )


def _has_reward(spec: FineTuneJobSpec) -> bool:
    return spec.reward is not None and (
        spec.reward.model is not None or len(spec.reward.functions) > 0
    )


_ONLINE = _cel_list(ONLINE_RL_METHODS)
_HAS_REWARD_CEL = (
    "has(self.reward) && (has(self.reward.model) || "
    "(has(self.reward.functions) && size(self.reward.functions) > 0))"
)


class FineTuneJobSpec(ApiModel):
    """The desired fine-tuning run."""

    method: Method = Field(
        description="Training method: sft (supervised), dpo, kto, orpo (preference), reward "
        "(reward model), grpo, rloo (online RL with a reward) or multitask (classification heads)."
    )
    model: ModelSource = Field(description="The base model.")
    adapter: AdapterSpec = Field(
        default_factory=AdapterSpec, description="What trains (default: qlora with rank 16)."
    )
    dataset: DatasetSpec | None = Field(
        default=None,
        description="The training data (required for every method except multitask, whose "
        "tasks carry their own datasets).",
    )
    training: TrainingSpec = Field(
        default_factory=TrainingSpec, description="Optimisation hyperparameters."
    )
    sft: SftSpec | None = Field(default=None, description="sft settings.")
    dpo: DpoSpec | None = Field(default=None, description="dpo settings.")
    kto: KtoSpec | None = Field(default=None, description="kto settings.")
    orpo: OrpoSpec | None = Field(default=None, description="orpo settings.")
    grpo: OnlineRlSpec | None = Field(default=None, description="grpo sampling settings.")
    rloo: OnlineRlSpec | None = Field(default=None, description="rloo sampling settings.")
    multitask: MultitaskSpec | None = Field(
        default=None, description="multitask tasks (required for method multitask)."
    )
    reward: RewardSpec | None = Field(
        default=None, description="Reward model and/or functions (grpo and rloo only)."
    )
    selfCritique: SelfCritiqueSpec | None = Field(
        default=None,
        description="Generate the training data first by constitutional self-critique "
        "(sft trains on the revisions, dpo on revision-over-draft pairs).",
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="GPUs, nodes, cpu, memory, storage per node."
    )
    scheduling: SchedulingSpec | None = Field(
        default=None, description="Node selection, tolerations, priority, Kueue queue."
    )
    output: OutputSpec = Field(description="Where the adapter, checkpoints and manifest go.")
    checkpoints: CheckpointSpec = Field(
        default_factory=CheckpointSpec, description="Checkpoint interval and retention."
    )
    suspend: bool = Field(
        default=False,
        description="Stop the training pods (after a final checkpoint) and keep the job; "
        "set back to false to resume from the newest checkpoint.",
    )
    activeDeadlineSeconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Fail the job when it has run longer than this."
    )
    backoffLimit: Annotated[int, Field(ge=0, le=100)] = Field(
        default=3,
        description="Pod failures tolerated before the job fails (preemptions and node "
        "disruptions don't count).",
    )
    ttlSecondsAfterFinished: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="Delete the FineTuneJob this long after it finished."
    )
    terminationGracePeriodSeconds: Annotated[int, Field(ge=30, le=86400)] | None = Field(
        default=None,
        description="Time the trainer gets on preemption to save a final checkpoint "
        "(default: the operator's setting, 600).",
    )
    image: Annotated[str, Field(max_length=512, pattern=r"^[^\s]+$")] | None = Field(
        default=None, description="Trainer image (default: the operator's trainer image)."
    )
    serviceAccountName: ObjectName | None = Field(
        default=None,
        description="ServiceAccount of the training pods (e.g. for cloud storage "
        "workload identity).",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra environment of the trainer (names unique). Names the operator sets "
        "are refused; names that route credentials or code (HF_*, AWS_*, proxies, PYTHON*, "
        "LD_*, ...) only where the platform's FineTuneJobPolicy allows them.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    tracking: TrackingSpec | None = Field(default=None, description="Experiment tracking.")
    evaluation: EvaluationSpec | None = Field(
        default=None,
        description="After training, answer evaluation prompts with the base and the tuned "
        "model and compare them (status.result.evaluation, a report next to the adapter, "
        "an optional gate).",
    )

    rules = (
        Rule(
            field="adapter.type",
            message="adapter.type qlora needs resources.gpus >= 1; to run it on CPU "
            "(slow, for tests) set adapter.quantization.allowCpu: true",
            check=lambda s: (
                s.adapter.type != "qlora"
                or s.resources.gpus >= 1
                or (s.adapter.quantization is not None and s.adapter.quantization.allowCpu)
            ),
            cel="self.adapter.type != 'qlora' || self.resources.gpus >= 1 || "
            "(has(self.adapter.quantization) && self.adapter.quantization.allowCpu)",
        ),
        Rule(
            field="dataset",
            message="dataset is required, except with method multitask (tasks carry datasets) "
            "or selfCritique (it generates the data)",
            check=lambda s: (
                s.method == "multitask" or (s.dataset is None) == (s.selfCritique is not None)
            ),
            cel="self.method == 'multitask' || has(self.dataset) != has(self.selfCritique)",
            reason="FieldValueRequired",
        ),
        Rule(
            field="training.sharding",
            message="training.sharding fsdp shards the weights of full fine-tuning: it needs "
            "adapter.type full or partial (an adapter is small enough to copy to every GPU)",
            check=lambda s: s.training.sharding != "fsdp" or s.adapter.type in ("full", "partial"),
            cel="self.training.sharding != 'fsdp' || self.adapter.type in ['full', 'partial']",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="training.sharding",
            message="training.sharding fsdp needs at least 2 GPUs in total "
            "(resources.gpus x resources.nodes): it shards across accelerators only",
            check=lambda s: (
                s.training.sharding != "fsdp" or s.resources.gpus * s.resources.nodes >= 2
            ),
            cel="self.training.sharding != 'fsdp' || "
            "self.resources.gpus * self.resources.nodes >= 2",
        ),
        Rule(
            field="selfCritique",
            message="selfCritique needs method sft or dpo (it trains on what it generates)",
            check=lambda s: s.selfCritique is None or s.method in ("sft", "dpo"),
            cel="!has(self.selfCritique) || self.method in ['sft', 'dpo']",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="selfCritique",
            message="selfCritique generates on one process: it needs resources.gpus <= 1 and "
            "resources.nodes 1 (generate with selfCritique.generateOnly, then train on its "
            "data with a larger job)",
            check=lambda s: (
                s.selfCritique is None or (s.resources.gpus <= 1 and s.resources.nodes == 1)
            ),
            cel="!has(self.selfCritique) || "
            "(self.resources.gpus <= 1 && self.resources.nodes == 1)",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="training.ewc",
            message="training.ewc anchors a language model: methods "
            f"{' and '.join(NON_GENERATIVE_METHODS)} train classifiers",
            check=lambda s: s.training.ewc is None or s.method not in NON_GENERATIVE_METHODS,
            cel=f"!has(self.training.ewc) || !(self.method in {_cel_list(NON_GENERATIVE_METHODS)})",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="training.earlyStopping",
            message="training.earlyStopping needs evaluation data: dataset.validation or "
            "dataset.validationSplit",
            check=lambda s: (
                s.training.earlyStopping is None
                or s.method == "multitask"
                or (
                    s.dataset is not None
                    and (s.dataset.validation is not None or s.dataset.validationSplit is not None)
                )
            ),
            cel="!has(self.training.earlyStopping) || self.method == 'multitask' || "
            "(has(self.dataset) && (has(self.dataset.validation) || "
            "has(self.dataset.validationSplit)))",
        ),
        Rule(
            field="multitask",
            message="method multitask needs multitask.tasks and no dataset (each task has its own)",
            check=lambda s: (
                s.method != "multitask" or (s.multitask is not None and s.dataset is None)
            ),
            cel="self.method != 'multitask' || (has(self.multitask) && !has(self.dataset))",
            reason="FieldValueRequired",
        ),
        Rule(
            field="adapter.type",
            message="method multitask trains classification heads on pooled hidden states: "
            "use adapter.type lora, qlora, partial or full",
            check=lambda s: s.method != "multitask" or s.adapter.type != "promptTuning",
            cel="self.method != 'multitask' || self.adapter.type != 'promptTuning'",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="adapter.newTokens",
            message="method multitask trains classification heads on pooled hidden states: "
            "remove adapter.newTokens",
            check=lambda s: s.method != "multitask" or not s.adapter.newTokens,
            cel="self.method != 'multitask' || !has(self.adapter.newTokens) || "
            "size(self.adapter.newTokens) == 0",
            reason="FieldValueForbidden",
        ),
        _format_rule(_PAIRED_METHODS, PAIRED_PREFERENCE_FORMATS),
        _format_rule(("kto",), UNPAIRED_PREFERENCE_FORMATS),
        _forbidden_format_rule(("sft",), _PREFERENCE_ONLY_FORMATS),
        _forbidden_format_rule(ONLINE_RL_METHODS, _UNSAMPLEABLE_FORMATS),
        *(block_only_with(block, "method", (block,)) for block in METHOD_BLOCKS),
        Rule(
            field="reward",
            message="method grpo and rloo need reward.model and/or reward.functions",
            check=lambda s: s.method not in ONLINE_RL_METHODS or _has_reward(s),
            cel=f"!(self.method in {_ONLINE}) || ({_HAS_REWARD_CEL})",
            reason="FieldValueRequired",
        ),
        Rule(
            field="reward",
            message="reward is only allowed with method grpo or rloo",
            check=lambda s: s.reward is None or s.method in ONLINE_RL_METHODS,
            cel=f"!has(self.reward) || self.method in {_ONLINE}",
            reason="FieldValueForbidden",
        ),
        *(_generations_divide_batch(method) for method in ONLINE_RL_METHODS),
        Rule(
            field="resources.nodes",
            message="resources.nodes > 1 (multi-node training) needs resources.gpus >= 1",
            check=lambda s: s.resources.nodes == 1 or s.resources.gpus >= 1,
            cel="self.resources.nodes == 1 || self.resources.gpus >= 1",
        ),
        Rule(
            field="resources.gpuType",
            message="resources.gpuType needs resources.gpus >= 1",
            check=lambda s: s.resources.gpuType is None or s.resources.gpus >= 1,
            cel="!has(self.resources.gpuType) || self.resources.gpus >= 1",
        ),
        Rule(
            field="training.precision",
            message="training.precision fp16 needs resources.gpus >= 1 (use bf16 or fp32 on CPU)",
            check=lambda s: s.training.precision != "fp16" or s.resources.gpus >= 1,
            cel="self.training.precision != 'fp16' || self.resources.gpus >= 1",
        ),
        Rule(
            field="dataset.packing",
            message="dataset.packing is only supported with method sft",
            check=lambda s: s.dataset is None or not s.dataset.packing or s.method == "sft",
            cel="!has(self.dataset) || !self.dataset.packing || self.method == 'sft'",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="output.merge",
            message="output.merge needs adapter.type lora or qlora (other types already "
            "produce full weights or can't be merged)",
            check=lambda s: not s.output.merge or s.adapter.type in ("lora", "qlora"),
            cel="!self.output.merge || self.adapter.type in ['lora', 'qlora']",
            reason="FieldValueForbidden",
        ),
        Rule(
            field="output.merge",
            message="output.merge is not available for method multitask: the result is a "
            "backbone adapter plus task heads, not a causal LM",
            check=lambda s: not s.output.merge or s.method != "multitask",
            cel="!self.output.merge || self.method != 'multitask'",
            reason="FieldValueForbidden",
        ),
        *EVALUATION_RULES,
        Rule(
            field="env",
            message="env names must be unique (each name once)",
            check=lambda s: len({e.name for e in s.env}) == len(s.env),
            # No CEL: the list is a map keyed by name, so the API server refuses duplicates.
        ),
        *(_immutable_while_running(field) for field in IMMUTABLE_WHILE_RUNNING),
    )
