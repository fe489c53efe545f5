"""Valid and invalid FineTuneJob manifests shared by the unit tests (Python models) and
the cluster tests (the API server with the generated CRD), so that both layers are held
to the same rules with the same expectations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

_DELETE = object()


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

    def manifest(self, name: str = "demo") -> dict[str, Any]:
        base = valid_manifest(name)
        base["metadata"].update(self.metadata)
        return merge(base, {"spec": self.spec_patch})


INVALID_CASES: tuple[InvalidCase, ...] = (
    InvalidCase("unknown-method", {"method": "ppo"}, "spec.method", "sft"),
    InvalidCase(
        "tracking-credentials-in-uri",
        {"tracking": {"backend": "mlflow", "uri": "https://ml:s3cret@mlflow.example.com"}},
        "spec.tracking.uri",
        "tracking.credentialsSecret",
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
    ),
    InvalidCase(
        "fsdp-with-lora",
        {"training": {"sharding": "fsdp"}},
        "spec.training.sharding",
        "needs adapter.type full or partial",
    ),
    InvalidCase(
        "fsdp-on-one-gpu",
        {"adapter": {"type": "full"}, "training": {"sharding": "fsdp"}, "resources": {"gpus": 1}},
        "spec.training.sharding",
        "needs at least 2 GPUs in total",
    ),
    InvalidCase(
        "epochs-and-max-steps",
        {"training": {"epochs": 2, "maxSteps": 10}},
        "spec.training.maxSteps",
        "mutually exclusive",
    ),
    InvalidCase(
        "warmup-both",
        {"training": {"warmupRatio": "0.1", "warmupSteps": 10}},
        "spec.training.warmupSteps",
        "mutually exclusive",
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
    ),
    InvalidCase(
        "qlora-without-gpu",
        {"adapter": {"type": "qlora"}, "resources": {"gpus": 0}},
        "spec.adapter.type",
        "allowCpu",
    ),
    InvalidCase(
        "dpo-with-messages",
        {"method": "dpo"},
        "spec.dataset.train.format",
        "preference",
    ),
    InvalidCase(
        "kto-with-text",
        {"method": "kto", "dataset": {"train": {"format": "text"}}},
        "spec.dataset.train.format",
        "unpairedPreference",
    ),
    InvalidCase(
        "sft-with-preference",
        {"dataset": {"train": {"format": "preference"}}},
        "spec.dataset.train.format",
        "prompts",
    ),
    InvalidCase("grpo-without-reward", {"method": "grpo"}, "spec.reward", "reward"),
    InvalidCase(
        "reward-block-on-sft",
        {"reward": LENGTH_REWARD},
        "spec.reward",
        "grpo or rloo",
    ),
    InvalidCase("dpo-block-on-sft", {"dpo": {"beta": "0.2"}}, "spec.dpo", "method dpo"),
    InvalidCase(
        "grpo-generations-do-not-divide",
        {
            "method": "grpo",
            "grpo": {"numGenerations": 3},
            "reward": LENGTH_REWARD,
        },
        "spec.training.batchSize",
        "numGenerations",
    ),
    InvalidCase(
        "exact-match-without-column",
        {"method": "rloo", "reward": {"functions": [{"type": "exactMatch"}]}},
        "spec.reward.functions[0].exactMatch",
        "referenceColumn",
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
    ),
    InvalidCase(
        "multi-node-cpu",
        {"resources": {"gpus": 0, "nodes": 2}},
        "spec.resources.nodes",
        "gpus",
    ),
    InvalidCase(
        "gpu-type-cpu",
        {"resources": {"gpus": 0, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
        "spec.resources.gpuType",
        "gpus",
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
    ),
    InvalidCase(
        "partial-empty",
        {"adapter": {"type": "partial", "partial": {}}},
        "spec.adapter.partial.layers",
        "at least one",
    ),
    InvalidCase(
        "quantization-on-lora",
        {"adapter": {"quantization": {"bits": 4}}},
        "spec.adapter.quantization",
        "qlora",
    ),
    InvalidCase(
        "new-tokens-with-prompt-tuning",
        {"adapter": {"type": "promptTuning", "newTokens": ["<x>"]}},
        "spec.adapter.newTokens",
        "promptTuning",
    ),
    InvalidCase(
        "validation-and-split",
        {"dataset": {"validation": {"uri": "s3://d/v.jsonl"}, "validationSplit": "0.1"}},
        "spec.dataset.validationSplit",
        "mutually exclusive",
    ),
    InvalidCase(
        "validation-split-one",
        {"dataset": {"validationSplit": "1"}},
        "spec.dataset.validationSplit",
        "(0, 1)",
    ),
    InvalidCase(
        "packing-with-dpo",
        {"method": "dpo", "dataset": {"train": {"format": "preference"}, "packing": True}},
        "spec.dataset.packing",
        "sft",
    ),
    InvalidCase(
        "merge-full",
        {"adapter": {"type": "full"}, "output": {"merge": True}},
        "spec.output.merge",
        "lora",
    ),
    InvalidCase(
        "fp16-on-cpu",
        {"resources": {"gpus": 0}, "training": {"precision": "fp16"}},
        "spec.training.precision",
        "fp16",
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
    ),
    InvalidCase(
        "env-reserved-name",
        {"env": [{"name": "KUBETUNE_CONFIG", "value": "x"}]},
        "spec.env[0].name",
        "reserved",
    ),
    InvalidCase(
        "env-operator-owned-name",
        {"env": [{"name": "HOME", "value": "/x"}]},
        "spec.env[0].name",
        "reserved",
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
    ),
    InvalidCase(
        "toleration-exists-with-value",
        {"scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.scheduling.tolerations[0].value",
        "Exists",
    ),
    InvalidCase(
        "multitask-without-tasks",
        {"method": "multitask", "dataset": DELETE},
        "spec.multitask",
        "multitask.tasks",
    ),
    InvalidCase("dataset-missing", {"dataset": DELETE}, "spec.dataset", "required"),
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
    ),
    InvalidCase(
        "self-critique-and-dataset",
        {"selfCritique": {"prompts": {"uri": "s3://d/p.jsonl"}, "principles": ["Be kind."]}},
        "spec.dataset",
        "selfCritique",
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
    ),
    InvalidCase(
        "early-stopping-without-validation",
        {"training": {"earlyStopping": {"patience": 2}}},
        "spec.training.earlyStopping",
        "validation",
    ),
    InvalidCase(
        "evaluation-without-prompts",
        {"evaluation": {}},
        "spec.evaluation.dataset",
        "evaluation needs prompts",
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
    ),
    InvalidCase(
        "evaluation-regex-without-pattern",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"metrics": ["regexMatch"]}},
        "spec.evaluation.pattern",
        "needs pattern",
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
    ),
    InvalidCase(
        "evaluation-duplicate-metrics",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"metrics": ["rougeL", "rougeL"]}},
        "spec.evaluation.metrics",
        "unique",
    ),
    InvalidCase(
        "evaluation-gate-on-a-metric-not-computed",
        {
            "dataset": {"validationSplit": "0.1"},
            "evaluation": {"gate": [{"metric": "contains", "minDelta": "0.05"}]},
        },
        "spec.evaluation.gate",
        "one of evaluation.metrics",
    ),
    InvalidCase(
        "evaluation-gate-without-threshold",
        {"dataset": {"validationSplit": "0.1"}, "evaluation": {"gate": [{"metric": "rougeL"}]}},
        "spec.evaluation.gate[0].minDelta",
        "minDelta and/or min",
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
    ),
    InvalidCase(
        "name-too-long",
        {},
        "metadata.name",
        "52",
        metadata={"name": "a" * 60},
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
