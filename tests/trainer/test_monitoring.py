"""Monitoring: perplexity in eval metrics, early stopping on a plateau, the curves PNG."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from safetensors.torch import load_file

from kubetune_contract import exit_codes
from kubetune_trainer.run import RunOptions, execute
from tests.trainer.helpers import make_config

pytestmark = pytest.mark.trainer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_plateau_stops_the_run_and_the_result_says_why(tmp_path: Path) -> None:
    # Planted plateau: a learning rate so small that the eval loss cannot move by minDelta.
    config = make_config(
        tmp_path,
        dataset={"validationSplit": "0.25"},
        training={
            "maxSteps": 20,
            "evalIntervalSteps": 1,
            "learningRate": "1e-9",
            "earlyStopping": {"patience": 2, "minDelta": "0.01"},
        },
        checkpoints={"intervalSteps": 100},
    )
    summary = execute(
        lambda: config, RunOptions(work_dir=tmp_path / "work", metrics_port=0, print_logs=False)
    )
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    # The evaluation before training sets the best value; two more without improvement
    # (after steps 1 and 2) stop it.
    assert (summary.step, summary.totalSteps) == (2, 20)
    assert "early stopping at step 2 of 20: eval_loss did not improve" in summary.message
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    early = manifest["earlyStopping"]
    assert (early["stoppedAtStep"], early["bestStep"], early["metric"]) == (2, 0, "eval_loss")
    # The best weights (before training) are put back, and the final evaluation is theirs.
    assert early["restoredStep"] == 0
    assert "the weights of step 0 are restored" in summary.message
    assert manifest["metrics"]["evalLoss"] == manifest["metrics"]["initialEvalLoss"]
    adapter = load_file(tmp_path / "out" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(not t.any() for t in lora_b)  # LoRA's B starts at zero
    assert manifest["metrics"]["evalPerplexity"] == pytest.approx(
        math.exp(manifest["metrics"]["evalLoss"])
    )

    png = (tmp_path / "out" / manifest["curves"]).read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert width > 100 and height > 100
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    assert any("eval_perplexity" in r for r in records)
