"""Adapter types (qlora, full, partial, promptTuning, newTokens, merge) with SFT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from kubetune_contract import exit_codes
from kubetune_trainer import adapters
from kubetune_trainer.builtin import materialize
from kubetune_trainer.run import RunOptions, execute, train
from tests.cases.manifests import DELETE
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer


def run_sft(tmp_path: Path, **override: Any) -> dict[str, Any]:
    summary = train(
        make_config(tmp_path, **override), RunOptions(work_dir=tmp_path / "work", print_logs=False)
    )
    assert summary.outcome == "Succeeded", summary.message
    manifest: dict[str, Any] = json.loads((tmp_path / "out" / "manifest.json").read_text())
    return manifest


def load_builtin(tmp_path: Path, adapter: dict[str, object]) -> adapters.LoadedModel:
    """The tiny model loaded for ``adapter`` as a run loads it: resolved by render."""
    folder = materialize("tiny-llama")
    spec = make_config(tmp_path, adapter=adapter).spec
    return adapters.load(folder, spec.adapter, spec.training, AutoTokenizer.from_pretrained(folder))


def test_qlora_quantizes_the_base_model_to_4_bit_nf4(tmp_path: Path) -> None:
    import bitsandbytes as bnb

    loaded = load_builtin(
        tmp_path, {"type": "qlora", "quantization": {"allowCpu": True, "computeDtype": "float32"}}
    )
    linear = loaded.model.model.layers[0].self_attn.q_proj
    assert isinstance(linear, bnb.nn.Linear4bit)
    assert getattr(linear.weight, "quant_type", None) == "nf4"
    manifest = run_sft(
        tmp_path,
        adapter={
            "type": "qlora",
            "lora": {"rank": 4},
            "quantization": {"allowCpu": True, "computeDtype": "float32"},
        },
    )
    assert manifest["adapterType"] == "qlora"
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_qlora_without_cuda_is_refused_unless_allowed(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: qlora is allowed")
    config = make_config(tmp_path, adapter={"type": "qlora"}, resources={"gpus": 1})
    summary = execute(lambda: config, RunOptions(work_dir=tmp_path / "work"))
    assert (summary.exitCode, summary.reason) == (exit_codes.INVALID_INPUT, "InvalidConfig")
    assert "allowCpu" in summary.message


def test_full_trains_every_weight_and_saves_a_whole_model(tmp_path: Path) -> None:
    manifest = run_sft(tmp_path, adapter={"type": "full", "lora": DELETE})
    parameters = manifest["parameters"]
    assert isinstance(parameters, dict) and parameters["trainable"] == parameters["total"]
    out = tmp_path / "out"
    assert not (out / "adapter_config.json").exists()
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 64


def test_partial_unfreezes_only_the_named_layers_and_patterns(tmp_path: Path) -> None:
    partial = {"layers": [1], "patterns": ["lm_head"]}
    loaded = load_builtin(tmp_path, {"type": "partial", "lora": DELETE, "partial": partial})
    trained = {n for n, p in loaded.model.named_parameters() if p.requires_grad}
    assert trained and all(".layers.1." in n or n.startswith("lm_head") for n in trained)
    assert any(n.startswith("lm_head") for n in trained)
    assert loaded.peft_config is None


def test_partial_run_publishes_full_weights(tmp_path: Path) -> None:
    manifest = run_sft(
        tmp_path, adapter={"type": "partial", "lora": DELETE, "partial": {"layers": [0]}}
    )
    parameters = manifest["parameters"]
    assert isinstance(parameters, dict)
    assert 0 < parameters["trainable"] < parameters["total"]
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_prompt_tuning_trains_virtual_tokens(tmp_path: Path) -> None:
    run_sft(
        tmp_path,
        adapter={
            "type": "promptTuning",
            "lora": DELETE,
            "promptTuning": {"virtualTokens": 5, "initText": "Answer:"},
        },
    )
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["num_virtual_tokens"]) == ("PROMPT_TUNING", 5)


def test_new_tokens_extend_the_vocabulary_and_train_embeddings(tmp_path: Path) -> None:
    run_sft(tmp_path, adapter={"newTokens": ["<tool_call>", "</tool_call>"]})
    out = tmp_path / "out"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("<tool_call>") == 512
    config = json.loads((out / "adapter_config.json").read_text())
    assert set(config["modules_to_save"]) == {"embed_tokens", "lm_head"}
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as weights:
        embeddings = [k for k in weights.keys() if "embed_tokens" in k]  # noqa: SIM118
        assert weights.get_tensor(embeddings[0]).shape[0] == 514


def test_merge_exports_a_plain_model(tmp_path: Path) -> None:
    manifest = run_sft(tmp_path, output={"merge": True})
    merged = tmp_path / "out" / "merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    files = manifest["files"]
    assert isinstance(files, list) and any(f.endswith("merged/model.safetensors") for f in files)
