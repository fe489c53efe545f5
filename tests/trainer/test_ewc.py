"""EWC: after learning task A, learning task B with EWC forgets less of A than without."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from kubetune_contract import exit_codes
from kubetune_contract.api.training import EwcSpec
from kubetune_trainer.builtin import materialize
from kubetune_trainer.errors import InvalidDataError
from kubetune_trainer.ewc import reference_texts
from kubetune_trainer.run import RunOptions, execute
from tests.cases.manifests import DELETE
from tests.trainer.helpers import CHAT_ROWS, PREFERENCE_ROWS, make_config, write_jsonl

pytestmark = pytest.mark.trainer

#: Task B: a different skill over different words, so that learning it disturbs task A.
TASK_B = [
    {
        "messages": [
            {"role": "user", "content": f"Name day {i} of the week."},
            {"role": "assistant", "content": f"Day {i} is {day}."},
        ]
    }
    for i, day in enumerate(
        ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], start=1
    )
]
FULL = {"adapter": {"type": "full", "lora": DELETE}}


def run(tmp_path: Path, rows: list[dict[str, Any]], **override: Any) -> dict[str, Any]:
    config = make_config(tmp_path, rows=rows, **override)
    summary = execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    manifest: dict[str, Any] = json.loads((tmp_path / "out" / "manifest.json").read_text())
    return manifest


def test_ewc_reduces_forgetting_of_the_reference_task(tmp_path: Path) -> None:
    task_a = write_jsonl(tmp_path / "task-a.jsonl", CHAT_ROWS)
    run(tmp_path / "a", CHAT_ROWS, **FULL, training={"maxSteps": 8, "learningRate": "2e-3"})
    learned_a = f"file://{tmp_path / 'a' / 'out'}"

    def forgetting(name: str, ewc: dict[str, Any] | None) -> float:
        training: dict[str, Any] = {"maxSteps": 8, "learningRate": "2e-3"}
        if ewc is not None:
            training["ewc"] = {"referenceDataset": {"uri": f"file://{task_a}"}, **ewc}
        manifest = run(
            tmp_path / name,
            TASK_B,
            **FULL,
            model={"uri": learned_a},
            dataset={"validation": {"uri": f"file://{task_a}"}},
            training=training,
        )
        metrics = manifest["metrics"]
        return float(metrics["evalLoss"] - metrics["initialEvalLoss"])

    plain = forgetting("plain", None)
    anchored = forgetting("ewc", {"samples": 8, "strength": "10000"})
    print(f"task-A loss rise: {plain:.3f} without EWC, {anchored:.3f} with")
    assert plain > 0.1, "task B must disturb task A for the comparison to mean anything"
    assert anchored < 0.5 * plain, (plain, anchored)


def test_reference_data_in_a_format_without_answers_is_refused_naming_the_field(
    tmp_path: Path,
) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", PREFERENCE_ROWS)
    spec = EwcSpec.model_validate({"referenceDataset": {"uri": f"file://{data}"}})
    with pytest.raises(InvalidDataError, match=r"training\.ewc\.referenceDataset .*preference"):
        reference_texts(spec, AutoTokenizer.from_pretrained(materialize("tiny-llama")), seed=0)
