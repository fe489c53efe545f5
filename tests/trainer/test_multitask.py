"""method multitask: a shared backbone with one head per task, per-task metrics, heads saved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from kubetune_contract import exit_codes
from kubetune_trainer.run import RunOptions, execute
from tests.cases.manifests import DELETE
from tests.trainer.helpers import make_config, write_jsonl

pytestmark = pytest.mark.trainer

COLOURS = ["red", "blue", "green"]
#: Task "sky": is the sentence about the sky (1) or not (0)? Task "colour": which colour.
SKY = [
    {"text": f"the sky is {c} on {d}", "label": 1} for c in COLOURS for d in ("Monday", "Friday")
]
SKY += [
    {"text": f"the fox is {c} on {d}", "label": 0} for c in COLOURS for d in ("Monday", "Friday")
]
COLOUR = [
    {"sentence": f"{c} {w}", "class": i}
    for i, c in enumerate(COLOURS)
    for w in ("fox", "sky", "dog", "day")
]


def test_each_task_gets_its_head_metrics_and_saved_weights(tmp_path: Path) -> None:
    sky = write_jsonl(tmp_path / "sky.jsonl", SKY)
    colour = write_jsonl(tmp_path / "colour.jsonl", COLOUR)
    spec: dict[str, Any] = {
        "method": "multitask",
        "dataset": DELETE,
        "multitask": {
            "tasks": [
                {"name": "sky", "dataset": {"uri": f"file://{sky}"}, "numLabels": 2},
                {
                    "name": "colour",
                    "dataset": {"uri": f"file://{colour}"},
                    "numLabels": 3,
                    "lossWeight": "2.0",
                    "textColumn": "sentence",
                    "labelColumn": "class",
                },
            ]
        },
        "training": {
            "maxSteps": 12,
            "batchSize": 4,
            "learningRate": "1e-2",
            "evalIntervalSteps": 6,
        },
    }
    config = make_config(tmp_path, **spec)
    summary = execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )
    assert summary.exitCode == exit_codes.SUCCESS, summary.message

    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    tasks = manifest["tasks"]
    assert set(tasks) == {"sky", "colour"}
    for metrics in tasks.values():
        assert set(metrics) == {"accuracy", "f1"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())
    # Held-out rows: 20% of each task (2 of 12 sky rows, 2 of 12 colour rows).
    assert (manifest["data"]["trainRows"], manifest["data"]["evalRows"]) == (20, 4)
    assert manifest["metrics"]["evalAccuracy"] == pytest.approx(
        (tasks["sky"]["accuracy"] + tasks["colour"]["accuracy"]) / 2
    )
    assert "tasks: sky accuracy" in summary.message
    # Both heads learn their easy tasks: the weighted loss falls, held-out rows are right.
    assert manifest["metrics"]["evalLoss"] < 0.5 * manifest["metrics"]["initialEvalLoss"]
    assert manifest["metrics"]["evalAccuracy"] >= 0.75

    layout = json.loads((out / "heads.json").read_text())
    assert [(t["name"], t["numLabels"], t["lossWeight"]) for t in layout["tasks"]] == [
        ("sky", 2, 1.0),
        ("colour", 3, 2.0),
    ]
    heads = load_file(out / "heads.safetensors")
    assert heads["0.weight"].shape == (2, 64) and heads["1.weight"].shape == (3, 64)
    assert (out / "adapter_model.safetensors").exists()
    assert (out / "adapter_config.json").exists()
