"""What the operator reads without training: termination summary, exit codes, metrics."""

from __future__ import annotations

import json
import urllib.request

import pytest

from kubetune_contract import exit_codes
from kubetune_contract.termination import LIMIT_BYTES, Summary
from kubetune_trainer.metrics import TrainerMetrics
from tests.trainer.helpers import free_port


def test_oversized_summaries_are_trimmed_message_first_then_old_checkpoints() -> None:
    checkpoints = [
        {"step": s, "uri": f"s3://bucket/{'x' * 200}/checkpoint-{s}", "evalLoss": 1.0}
        for s in range(100, 3100, 100)
    ]
    summary = Summary(
        "Failed",
        "InvalidData",
        "row 7: " + "bad " * 2000,
        exit_codes.INVALID_INPUT,
        step=3000,
        totalSteps=5000,
        metrics={"loss": 1.5, "evalLoss": 1.7},
        result={"adapterUri": None, "manifestUri": None, "mergedUri": None},
        checkpoints=checkpoints,
    )
    text = summary.to_json()
    assert len(text.encode()) < LIMIT_BYTES
    data = json.loads(text)
    assert data["message"].startswith("row 7: bad") and data["message"].endswith("...")
    assert data["checkpoints"] and data["checkpoints"][-1]["step"] == 3000  # newest kept
    assert data["metrics"] == {"loss": 1.5, "evalLoss": 1.7}
    assert (data["exitCode"], data["step"], data["totalSteps"]) == (3, 3000, 5000)


def test_exit_codes_are_distinct_and_avoid_shell_and_signal_codes() -> None:
    codes = [
        exit_codes.SUCCESS,
        exit_codes.INTERNAL_ERROR,
        exit_codes.INVALID_INPUT,
        exit_codes.RETRIABLE,
        exit_codes.INTERRUPTED,
    ]
    assert len(set(codes)) == len(codes) and set(exit_codes.NAMES) == set(codes)
    assert all(code < 126 and code != 2 for code in codes)
    assert exit_codes.NON_RETRIABLE.isdisjoint(exit_codes.DISRUPTION)


def test_only_local_rank_zero_serves_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert TrainerMetrics().serve(port=free_port()) == 0
    monkeypatch.setenv("LOCAL_RANK", "0")
    port = free_port()
    metrics = TrainerMetrics()
    assert metrics.serve(port=port) == port
    metrics.set("step", 7)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert "kubetune_trainer_step 7.0" in text
    assert "# HELP kubetune_trainer_tokens_per_second" in text
