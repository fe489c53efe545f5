"""Constitutional self-critique: draft, critique per principle, revise -> SFT and DPO data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetune_contract import exit_codes
from kubetune_trainer.run import RunOptions, execute
from tests.cases.manifests import DELETE
from tests.trainer.helpers import make_config, write_jsonl

pytestmark = pytest.mark.trainer

PRINCIPLES = ["Be accurate.", "Be brief and polite."]
PROMPTS = [
    {"prompt": "What is the capital of France?"},
    {"messages": [{"role": "user", "content": "What colour is the sky?"}]},
    {"prompt": "How many legs does a spider have?"},
]


def run(tmp_path: Path, method: str, **stage: Any) -> Any:
    prompts = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    config = make_config(
        tmp_path,
        method=method,
        dataset=DELETE,
        selfCritique={
            "prompts": {"uri": f"file://{prompts}"},
            "principles": PRINCIPLES,
            "sampling": {"maxNewTokens": 8, "temperature": "0.9"},
            **stage,
        },
    )
    return execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generated_pairs_critique_every_principle_in_order(tmp_path: Path) -> None:
    summary = run(tmp_path, "sft", generateOnly=True)
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    assert summary.result["adapterUri"] is None
    folder = tmp_path / "out" / "self-critique"
    sft, pairs = jsonl(folder / "sft.jsonl"), jsonl(folder / "preference.jsonl")

    # The builtin model has a chat template: every row is in messages form.
    assert [row["prompt"] for row in sft] == [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "user", "content": "What colour is the sky?"}],
        [{"role": "user", "content": "How many legs does a spider have?"}],
    ]
    assert all(set(row) == {"prompt", "completion"} for row in sft)
    assert all(row["completion"][0]["role"] == "assistant" for row in sft)
    assert pairs, "sampled revisions differ from their drafts"
    for pair in pairs:
        assert set(pair) == {"prompt", "chosen", "rejected", "critiques"}
        assert pair["chosen"] != pair["rejected"]
        assert [step["principle"] for step in pair["critiques"]] == PRINCIPLES
        assert all(step["critique"] for step in pair["critiques"])
        # The chosen answer is the last revision; each step starts from the one before.
        assert pair["critiques"][-1]["revision"] == pair["chosen"][0]["content"]
        assert pair["chosen"] in [row["completion"] for row in sft]

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    stage = manifest["selfCritique"]
    assert (stage["prompts"], stage["pairs"]) == (3, len(pairs))
    assert stage["sftUri"] == f"file://{folder / 'sft.jsonl'}"
    assert set(stage["revisionsPerPrinciple"]) == set(PRINCIPLES)
    assert all(0 < n <= 3 for n in stage["revisionsPerPrinciple"].values())
    assert "self-critique: 3 prompts" in summary.message


def test_a_restarted_job_reuses_its_data_unless_the_stage_changed(tmp_path: Path) -> None:
    first = run(tmp_path, "sft", generateOnly=True)
    data = tmp_path / "out" / "self-critique" / "sft.jsonl"
    written = data.read_bytes()
    again = run(tmp_path, "sft", generateOnly=True)
    assert again.exitCode == exit_codes.SUCCESS, again.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["selfCritique"]["reused"] is True
    assert data.read_bytes() == written
    assert (
        first.message.replace(
            "self-critique", "self-critique (data reused from an earlier attempt)", 1
        )
        == again.message
    )

    changed = run(tmp_path, "sft", generateOnly=True, principles=["Be kind."])
    assert changed.exitCode == exit_codes.SUCCESS, changed.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["selfCritique"]["reused"] is False
    assert set(manifest["selfCritique"]["revisionsPerPrinciple"]) == {"Be kind."}


def test_dpo_trains_on_the_generated_pairs(tmp_path: Path) -> None:
    summary = run(tmp_path, "dpo")
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    [data_file] = manifest["data"]["files"]
    assert data_file["uri"] == manifest["selfCritique"]["preferenceUri"]
    assert data_file["format"] == "preference"
    assert manifest["data"]["trainRows"] == manifest["selfCritique"]["pairs"]
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
    assert "self-critique: 3 prompts" in summary.message
