"""Builders shared by the trainer tests: job configs over the builtin tiny model, data files,
and the two ways a test stops a trainer (a signal, as the kubelet sends; a kill)."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from kubetune.render.trainer_config import render_trainer_config
from kubetune_contract.api.loading import parse_finetunejob
from kubetune_contract.api.trainer_config import TrainerConfig
from tests.cases.manifests import merge

#: The smallest useful run: two optimizer steps of a rank-4 LoRA on the tiny Llama.
BASE_SPEC: dict[str, Any] = {
    "method": "sft",
    "model": {"uri": "builtin://tiny-llama"},
    "adapter": {"type": "lora", "lora": {"rank": 4, "alpha": 8}},
    "training": {
        "maxSteps": 2,
        "batchSize": 2,
        "loggingIntervalSteps": 1,
        "learningRate": "1e-3",
        "precision": "fp32",
        "gradientCheckpointing": False,
    },
    "resources": {"gpus": 0},
}

CHAT_ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
        ]
    }
    for a in range(1, 5)
    for b in range(1, 3)
]
PREFERENCE_ROWS = [
    {"prompt": f"What is {a} plus 1?", "chosen": f" {a + 1}.", "rejected": f" {a + 7}."}
    for a in range(8)
]
PROMPT_ROWS = [{"prompt": f"What is {a} plus 1?", "answer": str(a + 1)} for a in range(8)]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def job_document(spec: dict[str, Any], name: str = "test-job") -> dict[str, Any]:
    return {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "namespace": "default", "uid": "uid-1"},
        "spec": spec,
    }


def make_config(
    tmp_path: Path, rows: list[dict[str, Any]] | None = None, **override: Any
) -> TrainerConfig:
    """A rendered TrainerConfig: BASE_SPEC + override, data in tmp_path, output in tmp_path."""
    data = write_jsonl(tmp_path / "data" / "train.jsonl", rows or CHAT_ROWS)
    spec = merge(
        BASE_SPEC,
        {
            "dataset": {"train": {"uri": f"file://{data}"}},
            "output": {"uri": f"file://{tmp_path / 'out'}"},
        },
    )
    spec = merge(spec, override)
    return render_trainer_config(parse_finetunejob(job_document(spec)))


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SignalAt(TrainerCallback):
    """Sends this process ``signum`` once at the end of ``step``, as the kubelet sends
    SIGTERM on preemption (or a user presses Ctrl-C). The preemption callback has looked
    at that step end already, so training stops after the next step."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step = step
        self.signum = signum

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no handler catches it."""
