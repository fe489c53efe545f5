"""Parity: our SFT and a plain TRL ``SFTTrainer`` script give the same per-step losses.

Same tiny model, data, seed and hyperparameters (the reference script is the benchmark's,
``bench/trainer_vs_trl.py``). Tolerance: 1e-5 absolute per step. Both sides run the same
float32 kernels on the same batches, so any real difference in data handling, masking,
LoRA setup or schedule shows up at 1e-2 or more; round-off stays below 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.trainer_vs_trl import Setting, kubetune_spec, plain_trl_sft
from kubetune.render.trainer_config import render_trainer_config
from kubetune_contract.api.loading import parse_finetunejob
from kubetune_trainer.builtin import materialize
from kubetune_trainer.run import RunOptions, train
from tests.trainer.helpers import CHAT_ROWS, job_document, write_jsonl

pytestmark = pytest.mark.trainer


def test_sft_losses_match_a_plain_trl_script(tmp_path: Path) -> None:
    setting = Setting(steps=6, batch_size=4)
    data = write_jsonl(tmp_path / "train.jsonl", CHAT_ROWS)
    spec = kubetune_spec(setting, data, tmp_path / "out")
    config = render_trainer_config(parse_finetunejob(job_document(spec)))
    train(config, RunOptions(work_dir=tmp_path / "work", print_logs=False))
    records = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
    ours = [r["loss"] for r in records if "loss" in r]

    history = plain_trl_sft(materialize("tiny-llama"), data, tmp_path / "plain", setting)
    plain = [e["loss"] for e in history if "loss" in e]

    assert len(ours) == len(plain) == setting.steps
    assert ours == pytest.approx(plain, abs=1e-5)
    assert ours[-1] < ours[0]  # and it is learning, not comparing two constant runs
