"""Benchmark: the kubetune trainer vs a plain TRL SFT script, same tiny model, data and seed.

    .venv/bin/python bench/trainer_vs_trl.py [--steps 150] [--repeats 3]

Each side runs in a fresh process, alternating, ``--repeats`` times: ours is the real
entry point (``python -m kubetune_trainer --config ...``: validation, data formats,
telemetry, checkpoint upload, manifest), the other is :func:`plain_trl_sft`, the script a
user would write with TRL alone. Reported per side: median wall time of the whole process
and of the training loop, peak RSS (``wait4``'s ``ru_maxrss``), and the largest per-step
loss difference. Target: wall-time ratio (ours / plain) <= 1.10.

:func:`plain_trl_sft` is also the reference of the parity test in
``tests/trainer/test_parity.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUICKSTART_TRAIN = REPO / "examples" / "quickstart-data" / "train.jsonl"


@dataclass(frozen=True)
class Setting:
    """The hyperparameters both sides use; both use torch's fused AdamW (TRL's default)."""

    steps: int = 150
    batch_size: int = 8
    learning_rate: str = "3e-3"
    rank: int = 8
    alpha: int = 16
    dropout: str = "0.05"
    seed: int = 42
    max_length: int = 128
    checkpoint_interval: int = 100


def kubetune_spec(setting: Setting, data: Path, output: Path) -> dict[str, Any]:
    """The FineTuneJob spec of our side."""
    return {
        "method": "sft",
        "model": {"uri": "builtin://tiny-llama"},
        "adapter": {
            "type": "lora",
            "lora": {"rank": setting.rank, "alpha": setting.alpha, "dropout": setting.dropout},
        },
        "dataset": {
            "train": {"uri": f"file://{data}", "format": "messages"},
            "maxLength": setting.max_length,
        },
        "training": {
            "maxSteps": setting.steps,
            "batchSize": setting.batch_size,
            "learningRate": setting.learning_rate,
            "seed": setting.seed,
            "precision": "fp32",
            "gradientCheckpointing": False,
            "loggingIntervalSteps": 1,
            "warmupSteps": 0,
            "scheduler": "cosine",
        },
        "checkpoints": {"intervalSteps": setting.checkpoint_interval, "keep": 1},
        "resources": {"gpus": 0},
        "output": {"uri": f"file://{output}"},
    }


def plain_trl_sft(
    model_dir: Path, data: Path, output: Path, setting: Setting
) -> list[dict[str, float]]:
    """A plain TRL LoRA SFT script; returns the Trainer's log history (one entry per step)."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    set_seed(setting.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    dataset = load_dataset("json", data_files=str(data), split="train")
    args = SFTConfig(
        output_dir=str(output),
        max_steps=setting.steps,
        per_device_train_batch_size=setting.batch_size,
        learning_rate=float(setting.learning_rate),
        lr_scheduler_type="cosine",
        optim="adamw_torch_fused",  # TRL's default, spelled out
        seed=setting.seed,
        max_length=setting.max_length,
        logging_steps=1,
        save_steps=setting.checkpoint_interval,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=setting.rank,
        lora_alpha=setting.alpha,
        lora_dropout=float(setting.dropout),
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(str(output / "final"))
    history: list[dict[str, float]] = trainer.state.log_history
    return history


def _child_plain(folder: Path, setting: Setting) -> None:
    from kubetune_trainer.builtin import materialize

    history = plain_trl_sft(materialize("tiny-llama"), QUICKSTART_TRAIN, folder / "plain", setting)
    print(json.dumps(_summarise(history)))


def _summarise(records: list[dict[str, float]]) -> dict[str, Any]:
    """Per-step losses and the training loop's own runtime, from a Trainer log history."""
    return {
        "losses": [r["loss"] for r in records if "loss" in r],
        "train_seconds": next(r["train_runtime"] for r in records if "train_runtime" in r),
    }


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS bytes, stdout) of one child process.

    CPU seconds are reported besides wall time because on a shared machine other load
    stretches wall time far more than it changes the CPU time a process needs.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command} failed: {text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text


def _ours(folder: Path, setting: Setting, env: dict[str, str]) -> dict[str, Any]:
    from kubetune.render.trainer_config import render_trainer_config, trainer_config_json
    from kubetune_contract.api.loading import parse_finetunejob

    job = parse_finetunejob(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "bench"},
            "spec": kubetune_spec(setting, QUICKSTART_TRAIN, folder / "ours"),
        }
    )
    folder.mkdir(parents=True)
    config = folder / "config.json"
    config.write_text(trainer_config_json(render_trainer_config(job)))
    wall, cpu, rss, _ = _run(
        [sys.executable, "-m", "kubetune_trainer", "--config", str(config)],
        {**env, "KUBETUNE_WORK_DIR": str(folder / "work")},
    )
    records = [json.loads(line) for line in (folder / "ours" / "metrics.jsonl").open()]
    return {"wall": wall, "cpu": cpu, "rss": rss, **_summarise(records)}


def _plain(folder: Path, setting: Setting, env: dict[str, str]) -> dict[str, Any]:
    wall, cpu, rss, text = _run(
        [sys.executable, __file__, "--child-plain", str(folder), json.dumps(asdict(setting))], env
    )
    result = json.loads(text.strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "rss": rss, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=Setting.steps)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child-plain", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_plain:
        _child_plain(Path(args.child_plain[0]), Setting(**json.loads(args.child_plain[1])))
        return
    setting = Setting(steps=args.steps)
    root = Path(tempfile.mkdtemp(prefix="kubetune-bench-"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "KUBETUNE_METRICS_PORT": "0",
        "KUBETUNE_TERMINATION_PATH": str(root / "termination-log"),
        "KUBETUNE_CACHE_DIR": str(root / "cache"),
    }
    _plain(root / "warmup", Setting(steps=2), env)  # builds the cached tiny model once
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    for repeat in range(args.repeats):
        runs["ours"].append(_ours(root / f"ours-{repeat}", setting, env))
        runs["plain"].append(_plain(root / f"plain-{repeat}", setting, env))

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[side])

    loss_gap = max(
        abs(a - b)
        for a, b in zip(runs["ours"][0]["losses"], runs["plain"][0]["losses"], strict=True)
    )
    print(
        f"steps={setting.steps} batch={setting.batch_size} repeats={args.repeats} "
        f"(quickstart data, builtin tiny-llama, LoRA r{setting.rank}, CPU)"
    )
    print(f"{'':8}{'process s':>11}{'CPU s':>8}{'train s':>10}{'peak RSS MiB':>14}")
    for side in ("ours", "plain"):
        print(
            f"{side:8}{median(side, 'wall'):11.2f}{median(side, 'cpu'):8.2f}"
            f"{median(side, 'train_seconds'):10.2f}"
            f"{max(r['rss'] for r in runs[side]) / 2**20:14.0f}"
        )
    ratios = {
        key: median("ours", key) / median("plain", key) for key in ("wall", "cpu", "train_seconds")
    }
    print(
        f"ratio ours/plain: process wall {ratios['wall']:.3f}, process CPU {ratios['cpu']:.3f}, "
        f"train loop {ratios['train_seconds']:.3f} (target <= 1.10)"
    )
    print(f"largest per-step loss difference: {loss_gap:.2e}")


if __name__ == "__main__":
    main()
