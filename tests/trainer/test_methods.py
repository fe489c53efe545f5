"""Every training method runs for real (TRL on CPU) with a LoRA on the tiny Llama."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubetune_trainer.run import RunOptions, execute, train
from tests.trainer.helpers import CHAT_ROWS, PREFERENCE_ROWS, PROMPT_ROWS, make_config

pytestmark = pytest.mark.trainer

ONLINE = {"numGenerations": 2, "maxCompletionLength": 8}
REWARD_FUNCTIONS = [
    {"type": "exactMatch", "exactMatch": {"referenceColumn": "answer"}},
    {"type": "formatRegex", "formatRegex": {"pattern": "[0-9]+"}, "weight": "0.5"},
    {"type": "lengthPenalty", "lengthPenalty": {"targetLength": 3}},
]

CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], str]] = {
    "sft": (CHAT_ROWS, {}, "loss"),
    "dpo": (PREFERENCE_ROWS, {"method": "dpo", "dpo": {"beta": "0.2"}}, "rewardsChosen"),
    "kto": (PREFERENCE_ROWS, {"method": "kto"}, "loss"),
    "orpo": (PREFERENCE_ROWS, {"method": "orpo"}, "loss"),
    "reward": (PREFERENCE_ROWS, {"method": "reward"}, "loss"),
    # With validation rows too: online methods evaluate rewards, not a loss.
    "grpo": (
        PROMPT_ROWS,
        {
            "method": "grpo",
            "grpo": ONLINE,
            "reward": {
                "model": {"uri": "builtin://tiny-llama"},
                "functions": REWARD_FUNCTIONS,
            },
            "dataset": {"validationSplit": "0.25"},
        },
        "reward",
    ),
    "rloo": (
        PROMPT_ROWS,
        {"method": "rloo", "rloo": ONLINE, "reward": {"functions": REWARD_FUNCTIONS}},
        "reward",
    ),
}


@pytest.mark.parametrize("method", list(CASES))
def test_method_trains_and_publishes_an_adapter(tmp_path: Path, method: str) -> None:
    rows, override, metric = CASES[method]
    summary = train(
        make_config(tmp_path, rows, **override),
        RunOptions(work_dir=tmp_path / "work", print_logs=False),
    )
    assert (summary.outcome, summary.exitCode, summary.step) == ("Succeeded", 0, 2)
    assert math.isfinite(summary.metrics[metric])
    out = tmp_path / "out"
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4
    assert adapter["task_type"] == ("SEQ_CLS" if method == "reward" else "CAUSAL_LM")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == method
    assert 0 < manifest["parameters"]["trainable"] < manifest["parameters"]["total"]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2]


def test_a_merged_reward_job_scores_grpo_completions(tmp_path: Path) -> None:
    """RLHF stages 2 and 3: a reward job's merged/ output is a grpo reward model."""
    reward_dir = tmp_path / "reward"
    reward = train(
        make_config(reward_dir, PREFERENCE_ROWS, method="reward", output={"merge": True}),
        RunOptions(work_dir=reward_dir / "work", print_logs=False),
    )
    merged = reward_dir / "out" / "merged"
    assert reward.result["mergedUri"] == f"file://{merged}"
    merged_config = json.loads((merged / "config.json").read_text())
    assert merged_config["architectures"] == ["LlamaForSequenceClassification"]
    assert len(merged_config["id2label"]) == 1  # one score: a reward

    grpo_dir = tmp_path / "grpo"
    adapter_only = execute(
        lambda: make_config(
            grpo_dir,
            PROMPT_ROWS,
            method="grpo",
            grpo=ONLINE,
            reward={"model": {"uri": f"file://{reward_dir / 'out'}"}},
        ),
        RunOptions(work_dir=grpo_dir / "work"),
    )
    assert adapter_only.reason == "InvalidModel"
    assert "use the merged/ folder" in adapter_only.message

    grpo = train(
        make_config(
            grpo_dir,
            PROMPT_ROWS,
            method="grpo",
            grpo=ONLINE,
            reward={"model": {"uri": f"file://{merged}"}},
        ),
        RunOptions(work_dir=grpo_dir / "work", print_logs=False),
    )
    assert grpo.outcome == "Succeeded" and math.isfinite(grpo.metrics["reward"])


@pytest.mark.parametrize(
    ("rows", "override"),
    [
        (CHAT_ROWS, {"dataset": {"packing": True, "maxLength": 64}}),
        (CHAT_ROWS, {"sft": {"assistantOnlyLoss": True}}),
        ([{"text": f"Fact {i}: {i} plus 1 is {i + 1}."} for i in range(8)], {}),
        (
            [{"prompt": f"{i} plus 1 is", "completion": f" {i + 1}."} for i in range(8)],
            {"sft": {"completionOnlyLoss": True}},
        ),
    ],
    ids=["packing", "assistant-only-loss", "plain-text", "completion-only-loss"],
)
def test_sft_variants(tmp_path: Path, rows: list[dict[str, Any]], override: dict[str, Any]) -> None:
    summary = train(
        make_config(tmp_path, rows, **override),
        RunOptions(work_dir=tmp_path / "work", print_logs=False),
    )
    assert summary.outcome == "Succeeded" and math.isfinite(summary.metrics["loss"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["data"]["trainRows"] == len(rows)


@pytest.mark.parametrize("optimizer", ["adamwFused", "adamw8bit", "pagedAdamw8bit", "adafactor"])
def test_each_optimizer_maps_to_a_working_trainer_optimizer(tmp_path: Path, optimizer: str) -> None:
    summary = train(
        make_config(tmp_path, training={"optimizer": optimizer, "scheduler": "constant"}),
        RunOptions(work_dir=tmp_path / "work", print_logs=False),
    )
    assert summary.outcome == "Succeeded" and math.isfinite(summary.metrics["loss"])
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    assert {r["learning_rate"] for r in records if "learning_rate" in r} == {1e-3}
