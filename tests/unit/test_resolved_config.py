"""Render resolves the run config once; the trainer loads exactly that and needs no defaults.

Every example manifest goes the operator's way (render, the ConfigMap's JSON) and the
trainer's way back (``kubetune_trainer.config.parse``); then each resolution rule on its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.estimate.hardware import GPUS
from kubetune.estimate.memory import compute_bytes
from kubetune.render.trainer_config import render_trainer_config, spec_digest, trainer_config_json
from kubetune_contract.api import parse_finetunejob
from kubetune_contract.api.adapter import LoraSpec, QuantizationSpec
from kubetune_contract.api.methods import DpoSpec, KtoSpec, SftSpec
from kubetune_contract.api.resolved import DpoJobSpec, KtoJobSpec, QloraAdapterSpec
from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_trainer.config import parse
from kubetune_trainer.errors import InvalidConfigError
from tests.cases.manifests import merge, valid_manifest

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))

#: The settings block each method reads (written out here, not taken from render).
METHOD_BLOCK = {
    "sft": "sft",
    "dpo": "dpo",
    "kto": "kto",
    "orpo": "orpo",
    "grpo": "grpo",
    "rloo": "rloo",
    "multitask": "multitask",
    "reward": None,
}
#: The adapter blocks each adapter type reads.
ADAPTER_BLOCKS = {
    "lora": {"lora"},
    "qlora": {"lora", "quantization"},
    "full": set(),
    "partial": {"partial"},
    "promptTuning": {"promptTuning"},
}
ALL_ADAPTER_BLOCKS = {"lora", "quantization", "partial", "promptTuning"}


def _through_the_configmap(config: TrainerConfig) -> TrainerConfig:
    """What the trainer reads: the ConfigMap's JSON, parsed as the trainer parses it."""
    return parse(json.loads(trainer_config_json(config)), "configmap")


def _render(**spec: Any) -> TrainerConfig:
    return render_trainer_config(parse_finetunejob(merge(valid_manifest(), {"spec": spec})))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_in_the_trainer_as_render_resolved_it(path: Path) -> None:
    job = parse_finetunejob(yaml.safe_load(path.read_text()))
    rendered = render_trainer_config(job)
    loaded = _through_the_configmap(rendered)

    assert loaded == rendered
    spec = loaded.spec
    block = METHOD_BLOCK[spec.method]
    for method_block in filter(None, METHOD_BLOCK.values()):
        assert (getattr(spec, method_block) is not None) == (method_block == block), method_block
    wanted = ADAPTER_BLOCKS[spec.adapter.type]
    for adapter_block in ALL_ADAPTER_BLOCKS:
        present = getattr(spec.adapter, adapter_block) is not None
        assert present == (adapter_block in wanted), adapter_block
    machine_known = spec.resources.gpus == 0 or spec.resources.gpuType in GPUS
    assert (spec.training.precision != "auto") == (
        machine_known or job.spec.training.precision != "auto"
    )
    assert loaded.specDigest == spec_digest(job.spec)


def test_an_omitted_method_block_is_its_models_defaults() -> None:
    dpo = _render(method="dpo", **_preference()).spec
    assert isinstance(dpo, DpoJobSpec) and dpo.dpo == DpoSpec()
    kto = _render(method="kto", dataset={"train": {"format": "unpairedPreference"}}).spec
    assert isinstance(kto, KtoJobSpec) and kto.kto == KtoSpec()


def test_a_written_block_is_kept_as_written() -> None:
    spec = _render(sft={"assistantOnlyLoss": True}).spec
    assert spec.sft == SftSpec(assistantOnlyLoss=True)


def test_an_omitted_adapter_block_is_its_models_defaults() -> None:
    adapter = _render(adapter={"type": "qlora", "lora": {"rank": 8}}).spec.adapter
    assert isinstance(adapter, QloraAdapterSpec)
    assert adapter.lora == LoraSpec(rank=8)
    assert adapter.quantization == QuantizationSpec()
    assert _render().spec.adapter.lora == LoraSpec()


@pytest.mark.parametrize(
    ("resources", "precision", "resolved"),
    [
        ({"gpus": 0}, "auto", "fp32"),
        ({"gpus": 1, "gpuType": "NVIDIA-H100-80GB-HBM3"}, "auto", "bf16"),
        ({"gpus": 1, "gpuType": "Tesla-T4"}, "auto", "fp32"),
        ({"gpus": 1, "gpuType": "Some-Future-GPU"}, "auto", "auto"),
        ({"gpus": 1}, "auto", "auto"),
        ({"gpus": 1, "gpuType": "Tesla-T4"}, "fp16", "fp16"),
        ({"gpus": 0}, "bf16", "bf16"),
    ],
)
def test_precision_auto_is_decided_where_the_spec_names_the_hardware(
    resources: dict[str, Any], precision: str, resolved: str
) -> None:
    config = _render(
        adapter={"type": "lora"}, resources=resources, training={"precision": precision}
    )
    assert config.spec.training.precision == resolved
    # The estimate counts bytes with the same decision (auto on an unknown GPU: bf16).
    assert compute_bytes(config.spec) == (4 if resolved == "fp32" else 2)


@pytest.mark.parametrize("batch", [4, "auto"])
def test_the_batch_size_is_left_to_the_machine(batch: int | str) -> None:
    """``auto`` probes on the GPU the trainer finds, so render keeps it as written."""
    assert _render(training={"batchSize": batch}).spec.training.batchSize == batch


def test_a_config_without_a_resolved_block_is_refused_by_the_trainer() -> None:
    """An older render that left a block out fails to parse, naming it, rather than
    running with defaults nobody recorded."""
    document = json.loads(trainer_config_json(_render(method="dpo", **_preference())))
    del document["spec"]["dpo"]
    with pytest.raises(InvalidConfigError, match=r"spec\.dpo: required field is missing"):
        parse(document, "old-configmap")


def _preference() -> dict[str, Any]:
    return {"dataset": {"train": {"format": "preference"}}}
