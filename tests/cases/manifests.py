"""Valid and invalid FineTuneJob manifests shared by the unit tests (Python models) and
the cluster tests (the API server with the generated CRD), so that both layers are held
to the same rules with the same expectations.

An invalid case refused by a cross-field rule carries its near miss (``accept``): the
closest manifest the same rule accepts, so each rule is seen to draw its line where its
message says, in Python and in CEL (:mod:`tests.cases.rules` checks every rule has both).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any


class _Delete:
    """The ``DELETE`` marker of a patch; copies of a patch keep the one marker."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Delete:
        return self

    def __repr__(self) -> str:
        return "DELETE"


_DELETE = _Delete()


def valid_manifest(name: str = "demo") -> dict[str, Any]:
    """A small valid LoRA SFT job, the base every invalid case mutates."""
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "method": "sft",
            "model": {"uri": "hf://org/model"},
            "adapter": {"type": "lora"},
            "dataset": {"train": {"uri": "s3://data/train.jsonl", "format": "messages"}},
            "output": {"uri": "s3://models/demo"},
        },
    }


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON-merge-patch style update: dicts merge, ``DELETE`` removes, the rest replaces."""
    result = copy.deepcopy(base)
    for key, value in patch.items():
        if value is _DELETE:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


DELETE = _DELETE

#: The smallest valid reward of a grpo/rloo case.
LENGTH_REWARD = {"functions": [{"type": "lengthPenalty", "lengthPenalty": {"targetLength": 10}}]}


@dataclass(frozen=True)
class InvalidCase:
    """A manifest that must be refused, and the field the error must name."""

    id: str
    spec_patch: dict[str, Any]
    field: str
    """Dotted path (from the object root) the error must name."""
    fragment: str
    """Text the message must contain."""
    server: bool = True
    """Whether the API server (schema or CEL) can refuse it too."""
    metadata: dict[str, Any] = dataclass_field(default_factory=dict)
    accept: dict[str, Any] | None = None
    """Spec patch of the near miss the refusing rule accepts (``None``: a schema case)."""
    accept_metadata: dict[str, Any] = dataclass_field(default_factory=dict)

    def manifest(self, name: str = "demo") -> dict[str, Any]:
        return _manifest(name, self.metadata, self.spec_patch)

    def near_miss(self, name: str = "demo") -> dict[str, Any] | None:
        """The accepted counterpart, if the case has one."""
        if self.accept is None:
            return None
        return _manifest(name, self.accept_metadata, self.accept)


def _manifest(name: str, metadata: dict[str, Any], spec_patch: dict[str, Any]) -> dict[str, Any]:
    base = valid_manifest(name)
    base["metadata"].update(metadata)
    return merge(base, {"spec": spec_patch})


_REWARD_FUNCTION = LENGTH_REWARD
_SELF_CRITIQUE = {"prompts": {"uri": "s3://d/p.jsonl"}, "principles": ["Be kind."]}
_TASKS = {
    "tasks": [
        {"name": "a", "dataset": {"uri": "s3://d/a.jsonl"}, "numLabels": 2},
        {"name": "b", "dataset": {"uri": "s3://d/b.jsonl"}, "numLabels": 3},
    ]
}
_EWC = {"ewc": {"referenceDataset": {"uri": "s3://d/old.jsonl"}}}
_HELD_OUT = {"validationSplit": "0.1"}

#: A valid spec patch per method, the base of the cases that pair settings with methods.
METHOD_PATCHES: dict[str, dict[str, Any]] = {
    "sft": {},
    "dpo": {"method": "dpo", "dataset": {"train": {"format": "preference"}}},
    "kto": {"method": "kto", "dataset": {"train": {"format": "unpairedPreference"}}},
    "orpo": {"method": "orpo", "dataset": {"train": {"format": "preference"}}},
    "reward": {"method": "reward", "dataset": {"train": {"format": "preference"}}},
    "grpo": {"method": "grpo", "reward": _REWARD_FUNCTION},
    "rloo": {"method": "rloo", "reward": _REWARD_FUNCTION},
    "multitask": {"method": "multitask", "dataset": DELETE, "multitask": _TASKS},
}
#: A valid settings block of each method that has one.
_BLOCKS: dict[str, dict[str, Any]] = {
    "sft": {"assistantOnlyLoss": True},
    "dpo": {"beta": "0.2"},
    "kto": {"beta": "0.2"},
    "orpo": {"beta": "0.2"},
    "grpo": {"numGenerations": 2},
    "rloo": {"numGenerations": 2},
    "multitask": _TASKS,
}
#: The method each block is wrongly paired with in its case.
_OTHER_METHOD = {
    "sft": "dpo",
    "dpo": "sft",
    "kto": "sft",
    "orpo": "dpo",
    "grpo": "rloo",
    "rloo": "grpo",
    "multitask": "sft",
}


def _with(method: str, patch: dict[str, Any]) -> dict[str, Any]:
    """The valid patch of ``method`` with ``patch`` merged over it."""
    return merge(METHOD_PATCHES[method], patch)


def _block_case(block: str) -> InvalidCase:
    other = _OTHER_METHOD[block]
    return InvalidCase(
        f"{block}-block-on-{other}",
        {**METHOD_PATCHES[other], block: _BLOCKS[block]},
        f"spec.{block}",
        f"method {block}",
        accept={**METHOD_PATCHES[block], block: _BLOCKS[block]},
    )


INVALID_CASES: tuple[InvalidCase, ...] = (
    InvalidCase("unknown-method", {"method": "ppo"}, "spec.method", "sft"),
    InvalidCase(
        "tracking-credentials-in-uri",
        {"tracking": {"backend": "mlflow", "uri": "https://ml:s3cret@mlflow.example.com"}},
        "spec.tracking.uri",
        "tracking.credentialsSecret",
        accept={
            "tracking": {
                "backend": "mlflow",
                "uri": "https://mlflow.example.com",
                "credentialsSecret": "ml",
            }
        },
    ),
    InvalidCase("missing-model", {"model": DELETE}, "spec.model", "required"),
    InvalidCase("missing-output", {"output": DELETE}, "spec.output", "required"),
    InvalidCase("bad-model-scheme", {"model": {"uri": "ftp://x/y"}}, "spec.model.uri", "hf://"),
    InvalidCase("bad-output-scheme", {"output": {"uri": "hf://x/y"}}, "spec.output.uri", "s3"),
    InvalidCase(
        "bad-format",
        {"dataset": {"train": {"format": "csv"}}},
        "spec.dataset.train.format",
        "messages",
    ),
    InvalidCase("unknown-field", {"adapterr": {"type": "lora"}}, "spec.adapterr", "unknown"),
    InvalidCase(
        "lora-rank-zero", {"adapter": {"lora": {"rank": 0}}}, "spec.adapter.lora.rank", "1"
    ),
    InvalidCase(
        "lora-dropout-one",
        {"adapter": {"lora": {"dropout": "1.5"}}},
        "spec.adapter.lora.dropout",
        "[0, 1)",
        accept={"adapter": {"lora": {"dropout": "0"}}},
    ),
    InvalidCase(
        "learning-rate-float-text",
        {"training": {"learningRate": "fast"}},
        "spec.training.learningRate",
        "pattern",
    ),
    InvalidCase(
        "learning-rate-too-big",
        {"training": {"learningRate": "3"}},
        "spec.training.learningRate",
        "(0, 1]",
        accept={"training": {"learningRate": "1"}},
    ),
    InvalidCase(
        "fsdp-with-lora",
        {"training": {"sharding": "fsdp"}},
        "spec.training.sharding",
        "needs adapter.type full or partial",
        accept={
            "adapter": {"type": "full"},
            "training": {"sharding": "fsdp"},
            "resources": {"gpus": 2},
        },
    ),
    InvalidCase(
        "fsdp-on-one-gpu",
        {"adapter": {"type": "full"}, "training": {"sharding": "fsdp"}, "resources": {"gpus": 1}},
        "spec.training.sharding",
        "needs at least 2 GPUs in total",
        accept={
            "adapter": {"type": "full"},
            "training": {"sharding": "fsdp"},
            "resources": {"gpus": 1, "nodes": 2},
        },
    ),
    InvalidCase(
        "epochs-and-max-steps",
        {"training": {"epochs": 2, "maxSteps": 10}},
        "spec.training.maxSteps",
        "mutually exclusive",
        accept={"training": {"maxSteps": 10}},
    ),
    InvalidCase(
        "warmup-both",
        {"training": {"warmupRatio": "0.1", "warmupSteps": 10}},
        "spec.training.warmupSteps",
        "mutually exclusive",
        accept={"training": {"warmupSteps": 10}},
    ),
    InvalidCase("batch-size-zero", {"training": {"batchSize": 0}}, "spec.training.batchSize", "1"),
    InvalidCase(
        "batch-size-word",
        {"training": {"batchSize": "max"}},
        "spec.training.batchSize",
        "auto",
    ),
    InvalidCase(
        "grpo-auto-batch-size",
        {
            "method": "grpo",
            "dataset": {"train": {"format": "promptCompletion"}},
            "training": {"batchSize": "auto"},
            "reward": LENGTH_REWARD,
        },
        "spec.training.batchSize",
        "not auto",
        accept=_with("grpo", {"training": {"batchSize": 8}}),
    ),
    InvalidCase(
        "qlora-without-gpu",
        {"adapter": {"type": "qlora"}, "resources": {"gpus": 0}},
        "spec.adapter.type",
        "allowCpu",
        accept={
            "adapter": {"type": "qlora", "quantization": {"allowCpu": True}},
            "resources": {"gpus": 0},
        },
    ),
    InvalidCase(
        "dpo-with-messages",
        {"method": "dpo"},
        "spec.dataset.train.format",
        "preference",
        accept=METHOD_PATCHES["dpo"],
    ),
    InvalidCase(
        "kto-with-text",
        {"method": "kto", "dataset": {"train": {"format": "text"}}},
        "spec.dataset.train.format",
        "unpairedPreference",
        accept=METHOD_PATCHES["kto"],
    ),
    InvalidCase(
        "sft-with-preference",
        {"dataset": {"train": {"format": "preference"}}},
        "spec.dataset.train.format",
        "prompts",
        accept={"dataset": {"train": {"format": "promptCompletion"}}},
    ),
    InvalidCase(
        "grpo-without-reward",
        {"method": "grpo"},
        "spec.reward",
        "reward",
        accept={"method": "grpo", "reward": {"model": {"uri": "s3://m/reward"}}},
    ),
    InvalidCase(
        "reward-block-on-sft",
        {"reward": LENGTH_REWARD},
        "spec.reward",
        "grpo or rloo",
        accept=METHOD_PATCHES["rloo"],
    ),
    InvalidCase(
        "grpo-generations-do-not-divide",
        {
            "method": "grpo",
            "grpo": {"numGenerations": 3},
            "reward": LENGTH_REWARD,
        },
        "spec.training.batchSize",
        "numGenerations",
        accept=_with("grpo", {"grpo": {"numGenerations": 2}}),
    ),
    InvalidCase(
        "exact-match-without-column",
        {"method": "rloo", "reward": {"functions": [{"type": "exactMatch"}]}},
        "spec.reward.functions[0].exactMatch",
        "referenceColumn",
        accept={
            "method": "rloo",
            "reward": {
                "functions": [{"type": "exactMatch", "exactMatch": {"referenceColumn": "answer"}}]
            },
        },
    ),
    InvalidCase(
        "reward-block-of-another-type",
        {
            "method": "rloo",
            "reward": {
                "functions": [
                    {
                        "type": "lengthPenalty",
                        "lengthPenalty": {"targetLength": 10},
                        "exactMatch": {"referenceColumn": "answer"},
                    }
                ]
            },
        },
        "spec.reward.functions[0].exactMatch",
        "only allowed with type exactMatch",
        accept=METHOD_PATCHES["rloo"],
    ),
    InvalidCase(
        "format-regex-block-of-another-type",
        {
            "method": "rloo",
            "reward": {
                "functions": [{**LENGTH_REWARD["functions"][0], "formatRegex": {"pattern": "^a"}}]
            },
        },
        "spec.reward.functions[0].formatRegex",
        "only allowed with type formatRegex",
        accept=METHOD_PATCHES["rloo"],
    ),
    InvalidCase(
        "length-penalty-block-of-another-type",
        {
            "method": "rloo",
            "reward": {
                "functions": [
                    {
                        "type": "formatRegex",
                        "formatRegex": {"pattern": "^a"},
                        "lengthPenalty": {"targetLength": 10},
                    }
                ]
            },
        },
        "spec.reward.functions[0].lengthPenalty",
        "only allowed with type lengthPenalty",
        accept=METHOD_PATCHES["rloo"],
    ),
    InvalidCase(
        "reward-bad-regex",
        {
            "method": "rloo",
            "reward": {"functions": [{"type": "formatRegex", "formatRegex": {"pattern": "("}}]},
        },
        "spec.reward.functions[0].formatRegex.pattern",
        "regular expression",
        server=False,
        accept={
            "method": "rloo",
            "reward": {"functions": [{"type": "formatRegex", "formatRegex": {"pattern": "(<a>)"}}]},
        },
    ),
    InvalidCase(
        "multi-node-cpu",
        {"resources": {"gpus": 0, "nodes": 2}},
        "spec.resources.nodes",
        "gpus",
        accept={"resources": {"gpus": 1, "nodes": 2}},
    ),
    InvalidCase(
        "gpu-type-cpu",
        {"resources": {"gpus": 0, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
        "spec.resources.gpuType",
        "gpus",
        accept={"resources": {"gpus": 1, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
    ),
    InvalidCase("too-many-gpus", {"resources": {"gpus": 32}}, "spec.resources.gpus", "16"),
    InvalidCase(
        "bad-quantity", {"resources": {"memory": "lots"}}, "spec.resources.memory", "pattern"
    ),
    InvalidCase(
        "secret-value-not-name",
        {"output": {"credentialsSecret": "AKIA/EXAMPLE+SECRET=="}},
        "spec.output.credentialsSecret",
        "pattern",
    ),
    InvalidCase(
        "partial-without-block",
        {"adapter": {"type": "partial"}},
        "spec.adapter.partial",
        "partial block",
        accept={"adapter": {"type": "partial", "partial": {"layers": [0]}}},
    ),
    InvalidCase(
        "partial-empty",
        {"adapter": {"type": "partial", "partial": {}}},
        "spec.adapter.partial.layers",
        "at least one",
        accept={"adapter": {"type": "partial", "partial": {"layers": [0]}}},
    ),
    InvalidCase(
        "quantization-on-lora",
        {"adapter": {"quantization": {"bits": 4}}},
        "spec.adapter.quantization",
        "qlora",
        accept={"adapter": {"type": "qlora", "quantization": {"bits": 4}}},
    ),
    InvalidCase(
        "new-tokens-with-prompt-tuning",
        {"adapter": {"type": "promptTuning", "newTokens": ["<x>"]}},
        "spec.adapter.newTokens",
        "promptTuning",
        accept={"adapter": {"type": "lora", "newTokens": ["<x>"]}},
    ),
    InvalidCase(
        "validation-and-split",
        {"dataset": {"validation": {"uri": "s3://d/v.jsonl"}, "validationSplit": "0.1"}},
        "spec.dataset.validationSplit",
        "mutually exclusive",
        accept={"dataset": {"validation": {"uri": "s3://d/v.jsonl"}}},
    ),
    InvalidCase(
        "validation-split-one",
        {"dataset": {"validationSplit": "1"}},
        "spec.dataset.validationSplit",
        "(0, 1)",
        accept={"dataset": {"validationSplit": "0.99"}},
    ),
    InvalidCase(
        "packing-with-dpo",
        {"method": "dpo", "dataset": {"train": {"format": "preference"}, "packing": True}},
        "spec.dataset.packing",
        "sft",
        accept={"dataset": {"packing": True}},
    ),
    InvalidCase(
        "merge-full",
        {"adapter": {"type": "full"}, "output": {"merge": True}},
        "spec.output.merge",
        "lora",
        accept={"adapter": {"type": "lora"}, "output": {"merge": True}},
    ),
    InvalidCase(
        "fp16-on-cpu",
        {"resources": {"gpus": 0}, "training": {"precision": "fp16"}},
        "spec.training.precision",
        "fp16",
        accept={"resources": {"gpus": 1}, "training": {"precision": "fp16"}},
    ),
    InvalidCase(
        "env-value-and-from",
        {
            "env": [
                {
                    "name": "A",
                    "value": "1",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                }
            ]
        },
        "spec.env[0].valueFrom",
        "exactly one",
        accept={"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
    ),
    InvalidCase(
        "env-reserved-name",
        {"env": [{"name": "KUBETUNE_CONFIG", "value": "x"}]},
        "spec.env[0].name",
        "reserved",
        accept={"env": [{"name": "MY_KUBETUNE_CONFIG", "value": "x"}]},
    ),
    InvalidCase(
        "env-operator-owned-name",
        {"env": [{"name": "HOME", "value": "/x"}]},
        "spec.env[0].name",
        "reserved",
        accept={"env": [{"name": "HOMEPAGE", "value": "/x"}]},
    ),
    InvalidCase(
        "env-torchrun-name",
        {"env": [{"name": "PET_MASTER_ADDR", "value": "attacker.example"}]},
        "spec.env[0].name",
        "reserved",
    ),
    InvalidCase(
        "env-duplicate-name",
        {"env": [{"name": "MODE", "value": "a"}, {"name": "MODE", "value": "b"}]},
        "spec.env",
        "unique",
        accept={"env": [{"name": "MODE", "value": "a"}, {"name": "MODE_B", "value": "b"}]},
    ),
    InvalidCase(
        "toleration-exists-with-value",
        {"scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.scheduling.tolerations[0].value",
        "Exists",
        accept={"scheduling": {"tolerations": [{"key": "k", "operator": "Exists"}]}},
    ),
    InvalidCase(
        "multitask-without-tasks",
        {"method": "multitask", "dataset": DELETE},
        "spec.multitask",
        "multitask.tasks",
        accept=METHOD_PATCHES["multitask"],
    ),
    InvalidCase(
        "dataset-missing",
        {"dataset": DELETE},
        "spec.dataset",
        "required",
        accept={"dataset": DELETE, "selfCritique": _SELF_CRITIQUE},
    ),
    InvalidCase(
        "multitask-duplicate-names",
        {
            "method": "multitask",
            "dataset": DELETE,
            "multitask": {
                "tasks": [
                    {"name": "a", "dataset": {"uri": "s3://d/a.jsonl"}, "numLabels": 2},
                    {"name": "a", "dataset": {"uri": "s3://d/b.jsonl"}, "numLabels": 3},
                ]
            },
        },
        "spec.multitask.tasks",
        "unique",
        accept=METHOD_PATCHES["multitask"],
    ),
    InvalidCase(
        "self-critique-with-grpo",
        {
            "method": "grpo",
            "dataset": DELETE,
            "reward": LENGTH_REWARD,
            "selfCritique": {"prompts": {"uri": "s3://d/p.jsonl"}, "principles": ["Be kind."]},
        },
        "spec.selfCritique",
        "sft or dpo",
        accept={"dataset": DELETE, "selfCritique": _SELF_CRITIQUE},
    ),
    InvalidCase(
        "self-critique-and-dataset",
        {"selfCritique": {"prompts": {"uri": "s3://d/p.jsonl"}, "principles": ["Be kind."]}},
        "spec.dataset",
        "selfCritique",
        accept={"dataset": DELETE, "selfCritique": _SELF_CRITIQUE},
    ),
    InvalidCase(
        "critique-template-without-principle",
        {
            "dataset": DELETE,
            "selfCritique": {
                "prompts": {"uri": "s3://d/p.jsonl"},
                "principles": ["Be kind."],
                "critiqueTemplate": "Critique {response}",
            },
        },
        "spec.selfCritique.critiqueTemplate",
        "{principle}",
        accept={
            "dataset": DELETE,
            "selfCritique": {
                **_SELF_CRITIQUE,
                "critiqueTemplate": "Critique {response} by {principle}",
            },
        },
    ),
    InvalidCase(
        "early-stopping-without-validation",
        {"training": {"earlyStopping": {"patience": 2}}},
        "spec.training.earlyStopping",
        "validation",
        accept={"dataset": _HELD_OUT, "training": {"earlyStopping": {"patience": 2}}},
    ),
    InvalidCase(
        "evaluation-without-prompts",
        {"evaluation": {}},
        "spec.evaluation.dataset",
        "evaluation needs prompts",
        accept={"evaluation": {"dataset": {"uri": "s3://d/eval.jsonl"}}},
    ),
    InvalidCase(
        "evaluation-of-a-reward-model",
        {
            "method": "reward",
            "dataset": {"train": {"format": "preference"}, "validationSplit": "0.1"},
            "evaluation": {},
        },
        "spec.evaluation",
        "no text generator",
        accept=_with("dpo", {"dataset": _HELD_OUT, "evaluation": {}}),
    ),
    InvalidCase(
        "evaluation-regex-without-pattern",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"metrics": ["regexMatch"]}},
        "spec.evaluation.pattern",
        "needs pattern",
        accept={
            "dataset": _HELD_OUT,
            "evaluation": {"metrics": ["regexMatch"], "pattern": "^[0-9]+$"},
        },
    ),
    InvalidCase(
        "evaluation-bad-regex",
        {
            "dataset": {"validationSplit": "0.1"},
            "evaluation": {"metrics": ["regexMatch"], "pattern": "(unclosed"},
        },
        "spec.evaluation.pattern",
        "regular expression",
        server=False,
        accept={
            "dataset": _HELD_OUT,
            "evaluation": {"metrics": ["regexMatch"], "pattern": "(closed)"},
        },
    ),
    InvalidCase(
        "evaluation-duplicate-metrics",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"metrics": ["rougeL", "rougeL"]}},
        "spec.evaluation.metrics",
        "unique",
        accept={"dataset": _HELD_OUT, "evaluation": {"metrics": ["rougeL", "tokenF1"]}},
    ),
    InvalidCase(
        "evaluation-gate-on-a-metric-not-computed",
        {
            "dataset": {"validationSplit": "0.1"},
            "evaluation": {"gate": [{"metric": "contains", "minDelta": "0.05"}]},
        },
        "spec.evaluation.gate",
        "one of evaluation.metrics",
        accept={
            "dataset": _HELD_OUT,
            "evaluation": {
                "metrics": ["contains"],
                "gate": [{"metric": "contains", "minDelta": "0.05"}],
            },
        },
    ),
    InvalidCase(
        "evaluation-gate-without-threshold",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"gate": [{"metric": "rougeL"}]}},
        "spec.evaluation.gate[0].minDelta",
        "minDelta and/or min",
        accept={"dataset": _HELD_OUT, "evaluation": {"gate": [{"metric": "rougeL", "min": "0.5"}]}},
    ),
    InvalidCase(
        "evaluation-gate-bad-number",
        {
            "dataset": {"validationSplit": "0.1"},
            "evaluation": {"gate": [{"metric": "rougeL", "min": "+0.5"}]},
        },
        "spec.evaluation.gate[0].min",
        "pattern",
    ),
    InvalidCase(
        "evaluation-win-rate-without-reward-model",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"metrics": ["winRate"]}},
        "spec.evaluation.metrics",
        "reward.model",
        accept={
            "method": "grpo",
            "reward": {"model": {"uri": "s3://m/reward"}},
            "dataset": _HELD_OUT,
            "evaluation": {"metrics": ["winRate"]},
        },
    ),
    InvalidCase(
        "evaluation-of-generated-data-only",
        {
            "dataset": DELETE,
            "selfCritique": {
                "prompts": {"uri": "s3://d/p.jsonl"},
                "principles": ["Be kind."],
                "generateOnly": True,
            },
            "evaluation": {"dataset": {"uri": "s3://d/eval.jsonl"}},
        },
        "spec.evaluation",
        "trains nothing",
        accept={
            "dataset": DELETE,
            "selfCritique": _SELF_CRITIQUE,
            "evaluation": {"dataset": {"uri": "s3://d/eval.jsonl"}},
        },
    ),
    InvalidCase(
        "ewc-without-reference",
        {"training": {"ewc": {"samples": 8}}},
        "spec.training.ewc.referenceDataset",
        "required",
    ),
    InvalidCase(
        "bad-regex",
        {"adapter": {"type": "partial", "partial": {"patterns": ["(unclosed"]}}},
        "spec.adapter.partial.patterns",
        "regular expression",
        server=False,
        accept={"adapter": {"type": "partial", "partial": {"patterns": ["^(lm_head)"]}}},
    ),
    InvalidCase(
        "name-too-long",
        {},
        "metadata.name",
        "52",
        metadata={"name": "a" * 60},
        accept={},
        accept_metadata={"name": "a" * 52},
    ),
    InvalidCase(
        "self-critique-on-two-gpus",
        {"dataset": DELETE, "selfCritique": _SELF_CRITIQUE, "resources": {"gpus": 2}},
        "spec.selfCritique",
        "one process",
        accept={"dataset": DELETE, "selfCritique": _SELF_CRITIQUE, "resources": {"gpus": 1}},
    ),
    InvalidCase(
        "self-critique-on-two-nodes",
        {"dataset": DELETE, "selfCritique": _SELF_CRITIQUE, "resources": {"nodes": 2}},
        "spec.selfCritique",
        "one process",
        accept={"dataset": DELETE, "selfCritique": _SELF_CRITIQUE, "resources": {"gpus": 0}},
    ),
    InvalidCase(
        "ewc-with-reward",
        _with("reward", {"training": _EWC}),
        "spec.training.ewc",
        "anchors a language model",
        accept=_with("dpo", {"training": _EWC}),
    ),
    InvalidCase(
        "ewc-with-multitask",
        _with("multitask", {"training": _EWC}),
        "spec.training.ewc",
        "anchors a language model",
        accept=_with("sft", {"training": _EWC}),
    ),
    InvalidCase(
        "multitask-prompt-tuning",
        _with("multitask", {"adapter": {"type": "promptTuning"}}),
        "spec.adapter.type",
        "pooled hidden states",
        accept=_with("multitask", {"adapter": {"type": "partial", "partial": {"layers": [0]}}}),
    ),
    InvalidCase(
        "multitask-new-tokens",
        _with("multitask", {"adapter": {"newTokens": ["<x>"]}}),
        "spec.adapter.newTokens",
        "pooled hidden states",
        accept=_with("multitask", {"adapter": {"newTokens": []}}),
    ),
    InvalidCase(
        "multitask-merge",
        _with("multitask", {"output": {"merge": True}}),
        "spec.output.merge",
        "backbone adapter plus task heads",
        accept=_with("multitask", {"output": {"merge": False}}),
    ),
    InvalidCase(
        "grpo-with-preference",
        _with("grpo", {"dataset": {"train": {"format": "preference"}}}),
        "spec.dataset.train.format",
        "prompts or conversations",
        accept=_with("grpo", {"dataset": {"train": {"format": "alpaca"}}}),
    ),
    InvalidCase(
        "rloo-with-text-validation",
        _with("rloo", {"dataset": {"validation": {"uri": "s3://d/v.txt", "format": "text"}}}),
        "spec.dataset.train.format",
        "prompts or conversations",
        accept=_with("rloo", {"dataset": {"validation": {"uri": "s3://d/v.jsonl"}}}),
    ),
    *(_block_case(block) for block in _BLOCKS),
    InvalidCase(
        "rloo-generations-do-not-divide",
        _with("rloo", {"training": {"batchSize": 3}}),
        "spec.training.batchSize",
        "numGenerations",
        accept=_with("rloo", {"training": {"batchSize": 3, "gradientAccumulationSteps": 4}}),
    ),
    InvalidCase(
        "lora-block-on-full",
        {"adapter": {"type": "full", "lora": {"rank": 8}}},
        "spec.adapter.lora",
        "lora, qlora",
        accept={"adapter": {"type": "qlora", "lora": {"rank": 8}}},
    ),
    InvalidCase(
        "prompt-tuning-block-on-lora",
        {"adapter": {"promptTuning": {"virtualTokens": 8}}},
        "spec.adapter.promptTuning",
        "type promptTuning",
        accept={"adapter": {"type": "promptTuning", "promptTuning": {"virtualTokens": 8}}},
    ),
    InvalidCase(
        "partial-block-on-lora",
        {"adapter": {"partial": {"layers": [0]}}},
        "spec.adapter.partial",
        "type partial",
        accept={"adapter": {"type": "partial", "partial": {"layers": [0]}}},
    ),
    InvalidCase(
        "quality-length-max-below-min",
        {"dataset": {"quality": {"length": {"min": 10, "max": 5}}}},
        "spec.dataset.quality.length.max",
        "at least min",
        accept={"dataset": {"quality": {"length": {"min": 10, "max": 10}}}},
    ),
    InvalidCase(
        "quality-newline-ratio-zero",
        {"dataset": {"quality": {"newlineRatio": {"max": "0"}}}},
        "spec.dataset.quality.newlineRatio.max",
        "(0, 1)",
        accept={"dataset": {"quality": {"newlineRatio": {"max": "0.01"}}}},
    ),
    InvalidCase(
        "quality-near-duplicates-one",
        {"dataset": {"quality": {"duplicates": {"nearThreshold": "1.0"}}}},
        "spec.dataset.quality.duplicates.nearThreshold",
        "(0, 1)",
        accept={"dataset": {"quality": {"duplicates": {"nearThreshold": "0.9"}}}},
    ),
    InvalidCase(
        "warmup-ratio-one",
        {"training": {"warmupRatio": "1"}},
        "spec.training.warmupRatio",
        "[0, 1)",
        accept={"training": {"warmupRatio": "0"}},
    ),
    InvalidCase(
        "format-regex-without-pattern",
        {"method": "rloo", "reward": {"functions": [{"type": "formatRegex"}]}},
        "spec.reward.functions[0].formatRegex",
        "needs the formatRegex block",
        accept={
            "method": "rloo",
            "reward": {"functions": [{"type": "formatRegex", "formatRegex": {"pattern": "^<a>"}}]},
        },
    ),
    InvalidCase(
        "length-penalty-without-target",
        {
            "method": "rloo",
            "reward": {"functions": [_REWARD_FUNCTION["functions"][0], {"type": "lengthPenalty"}]},
        },
        "spec.reward.functions[1].lengthPenalty",
        "needs the lengthPenalty block",
        accept=METHOD_PATCHES["rloo"],
    ),
    InvalidCase(
        "revision-template-without-critique",
        {
            "dataset": DELETE,
            "selfCritique": {**_SELF_CRITIQUE, "revisionTemplate": "Rewrite {response}"},
        },
        "spec.selfCritique.revisionTemplate",
        "{critique}",
        accept={
            "dataset": DELETE,
            "selfCritique": {**_SELF_CRITIQUE, "revisionTemplate": "Fix {response}: {critique}"},
        },
    ),
    InvalidCase(
        "env-from-secret-and-config-map",
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ]
        },
        "spec.env[0].valueFrom.secretKeyRef",
        "exactly one",
        accept={
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
        },
    ),
)


#: Valid counterparts: each exercises the allowed side of one or more rules above.
VALID_SPEC_PATCHES: dict[str, dict[str, Any]] = {
    "defaults-only": {"adapter": DELETE},
    "batch-size-auto": {"training": {"batchSize": "auto"}},
    "qlora-cpu-allowed": {
        "adapter": {"type": "qlora", "quantization": {"allowCpu": True}},
        "resources": {"gpus": 0},
    },
    "dpo-preference": {"method": "dpo", "dataset": {"train": {"format": "preference"}}},
    "kto-unpaired": {"method": "kto", "dataset": {"train": {"format": "unpairedPreference"}}},
    "reward-auto": {"method": "reward", "dataset": {"train": {"format": "auto"}}},
    "grpo-functions": {
        "method": "grpo",
        "dataset": {"train": {"format": "promptCompletion"}},
        "grpo": {"numGenerations": 2},
        "reward": {"functions": [{"type": "formatRegex", "formatRegex": {"pattern": "^<a>"}}]},
    },
    "rloo-model": {
        "method": "rloo",
        "reward": {
            "model": {"uri": "hf://org/reward", "revision": "v2", "credentialsSecret": "hub"}
        },
    },
    "max-steps-only": {"training": {"maxSteps": 10, "warmupSteps": 2}},
    "epochs-warmup-ratio": {"training": {"epochs": 2, "warmupRatio": "0.1"}},
    "validation-split": {"dataset": {"validationSplit": "0.1", "packing": True}},
    "multi-node-gpu": {"resources": {"gpus": 8, "nodes": 2, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
    "partial-patterns": {"adapter": {"type": "partial", "partial": {"patterns": ["^lm_head"]}}},
    "prompt-tuning": {"adapter": {"type": "promptTuning", "promptTuning": {"virtualTokens": 8}}},
    "merge-lora": {"output": {"merge": True}},
    "env-from-secret": {
        "env": [{"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "w", "key": "k"}}}]
    },
    "tracking-mlflow-with-secret": {
        "tracking": {
            "backend": "mlflow",
            "uri": "https://mlflow.example.com:5000",
            "project": "llama",
            "credentialsSecret": "mlflow-login",
        }
    },
    "toleration-exists": {"scheduling": {"tolerations": [{"key": "spot", "operator": "Exists"}]}},
    "multitask": {
        "method": "multitask",
        "dataset": DELETE,
        "multitask": {
            "tasks": [
                {"name": "a", "dataset": {"uri": "s3://d/a.jsonl"}, "numLabels": 2},
                {"name": "b", "dataset": {"uri": "s3://d/b.jsonl"}, "numLabels": 3},
            ]
        },
    },
    "bf16-on-cpu": {"resources": {"gpus": 0}, "training": {"precision": "bf16"}},
    "self-critique-dpo": {
        "method": "dpo",
        "dataset": DELETE,
        "selfCritique": {"prompts": {"uri": "s3://d/p.jsonl"}, "principles": ["Be honest."]},
    },
    "evaluation-held-out-rows": {"dataset": {"validationSplit": "0.1"}, "evaluation": {}},
    "evaluation-full": {
        "method": "grpo",
        "dataset": {"train": {"format": "promptCompletion"}},
        "grpo": {"numGenerations": 2},
        "reward": {"model": {"uri": "s3://m/reward"}},
        "evaluation": {
            "dataset": {"uri": "s3://d/eval.jsonl", "format": "promptCompletion"},
            "referenceColumn": "answer",
            "maxPrompts": 200,
            "generation": {"maxNewTokens": 32, "temperature": "0.7", "batchSize": 16},
            "metrics": ["exactMatch", "regexMatch", "rewardScore", "winRate"],
            "pattern": "^[0-9]+$",
            "gate": [
                {"metric": "winRate", "min": "0.55"},
                {"metric": "exactMatch", "minDelta": "-0.02", "min": "0.3"},
            ],
        },
    },
    "early-stopping-and-ewc": {
        "dataset": {"validationSplit": "0.1"},
        "training": {
            "earlyStopping": {"metric": "eval_loss", "patience": 2, "minDelta": "0.01"},
            "ewc": {"referenceDataset": {"uri": "s3://d/old.jsonl"}, "strength": "50"},
        },
    },
}


def valid_case(case_id: str, name: str = "demo") -> dict[str, Any]:
    """The manifest of one of :data:`VALID_SPEC_PATCHES`."""
    return merge(valid_manifest(name), {"spec": VALID_SPEC_PATCHES[case_id]})
