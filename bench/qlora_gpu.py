"""Benchmark: QLoRA SFT of a Llama-3.1-8B-shaped model, plain TRL vs the kubetune trainer.

    .venv/bin/python bench/qlora_gpu.py                 # on an NVIDIA GPU: 8B shape, 2048 tokens
    .venv/bin/python bench/qlora_gpu.py --tiny          # anywhere: a tiny shape, end to end

The base model has random weights built from a ``LlamaConfig`` with Llama-3.1-8B's shape
(no download): it is saved once under ``--cache`` and loaded by both sides in 4-bit NF4.
The data is synthetic text whose lengths spread evenly from 1/8 of the sequence length to
all of it, so that padding costs what it costs on real instruction data.

- **baseline**: the plain TRL script a user would write: ``SFTTrainer`` with the model
  path, ``quantization_config``, LoRA on all linear layers, padded batches, TRL's defaults
  (SDPA attention, fused AdamW, gradient checkpointing).
- **ours**: the real entry point (``python -m kubetune_trainer --config ...``) on the same
  model, data and LoRA, with what the trainer turns on: ``dataset.packing`` (best-fit
  decreasing packing, padding-free), Liger kernels when ``liger-kernel`` is installed
  (GPU only), SDPA, fused AdamW.

Each side runs in its own process. Reported: tokens/s (real tokens, padding excluded,
from TRL's ``num_tokens``, after ``--warmup`` steps) and peak memory: on a GPU the peak
GPU memory of the process as ``nvidia-smi`` sees it (weights, activations, allocator
cache and CUDA context alike, measured the same way for both); without one the peak RSS.
Target on a GPU: ours >= 1.3x the baseline's tokens/s at <= its memory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

#: Llama-3.1-8B's shape (config.json of meta-llama/Llama-3.1-8B).
LLAMA_3_1_8B: dict[str, Any] = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}
TINY: dict[str, Any] = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


@dataclass(frozen=True)
class Setting:
    """What both sides share."""

    seq_len: int = 2048
    batch_size: int = 4
    steps: int = 30
    warmup: int = 5
    rank: int = 16
    alpha: int = 32
    learning_rate: str = "2e-4"
    seed: int = 42
    gpu: bool = True

    @property
    def rows(self) -> int:
        # Packing needs fewer rows per step; enough for the padded side's steps either way.
        return self.steps * self.batch_size + 8


def base_model(shape: dict[str, Any], folder: Path, gpu: bool) -> Path:
    """A randomly initialised Llama of ``shape`` with the builtin tokenizer, saved once."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from kubetune_trainer.builtin import materialize

    torch.manual_seed(0)
    config = LlamaConfig(**shape, tie_word_embeddings=False)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # 16 GB for the 8B shape, not 32
    try:
        with torch.device("cuda" if gpu else "cpu"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    AutoTokenizer.from_pretrained(materialize("tiny-llama")).save_pretrained(partial)
    partial.rename(folder)  # complete or absent: a killed run never leaves half a model
    return folder


def synthetic_text(model_dir: Path, setting: Setting, path: Path) -> Path:
    """``text`` rows whose token counts spread evenly over [seq_len / 8, seq_len]."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rng = random.Random(setting.seed)
    words = [w for w in tokenizer.get_vocab() if w.isalpha() and len(w) > 2] or ["data"]
    per_word = len(tokenizer(" ".join(words[:200]))["input_ids"]) / min(200, len(words))
    with path.open("w", encoding="utf-8") as out:
        for _ in range(setting.rows):
            tokens = rng.randint(setting.seq_len // 8, setting.seq_len)
            count = max(1, int(tokens / per_word * 0.95))
            out.write(json.dumps({"text": " ".join(rng.choices(words, k=count))}) + "\n")
    return path


def throughput(records: list[dict[str, Any]], warmup: int) -> float:
    """Real tokens per second between the end of step ``warmup`` and the last step."""
    logged = [r for r in records if "num_tokens" in r and "loss" in r]
    start = next(r for r in logged if r["step"] >= warmup)
    end = logged[-1]
    return float((end["num_tokens"] - start["num_tokens"]) / (end["time"] - start["time"]))


# ---- the two sides, each run in a child process -------------------------------------


def plain_trl(model_dir: Path, data: Path, output: Path, setting: Setting) -> None:
    """The baseline script; writes one JSON record per log to ``output/metrics.jsonl``."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class Records(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            with (output / "metrics.jsonl").open("a") as out:
                record = {"step": state.global_step, "time": time.time(), **(logs or {})}
                out.write(json.dumps(record) + "\n")

    dtype = torch.bfloat16 if setting.gpu else torch.float32
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    args = SFTConfig(
        output_dir=str(output),
        model_init_kwargs={"quantization_config": quantization, "dtype": dtype},
        max_steps=setting.steps,
        per_device_train_batch_size=setting.batch_size,
        learning_rate=float(setting.learning_rate),
        max_length=setting.seq_len,
        seed=setting.seed,
        logging_steps=1,
        save_strategy="no",
        bf16=setting.gpu,
        use_cpu=not setting.gpu,
        report_to="none",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=setting.rank, lora_alpha=setting.alpha, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=load_dataset("json", data_files=str(data), split="train"),
        peft_config=peft_config,
        callbacks=[Records()],
    )
    trainer.train()


def kubetune_config(model_dir: Path, data: Path, output: Path, setting: Setting) -> str:
    """Our side's rendered trainer config: the same model, data, LoRA and steps."""
    from kubetune.render.trainer_config import render_trainer_config, trainer_config_json
    from kubetune_contract.api.loading import parse_finetunejob

    spec = {
        "method": "sft",
        "model": {"uri": f"file://{model_dir}"},
        "adapter": {
            "type": "qlora",
            "lora": {"rank": setting.rank, "alpha": setting.alpha, "dropout": "0"},
            "quantization": {"allowCpu": not setting.gpu},
        },
        "dataset": {
            "train": {"uri": f"file://{data}", "format": "text"},
            "maxLength": setting.seq_len,
            "packing": True,
        },
        "training": {
            "maxSteps": setting.steps,
            "batchSize": setting.batch_size,
            "learningRate": setting.learning_rate,
            "seed": setting.seed,
            "precision": "bf16" if setting.gpu else "fp32",
            "optimizer": "adamwFused",
            "loggingIntervalSteps": 1,
        },
        "checkpoints": {"intervalSteps": 1_000_000, "keep": 1},
        "resources": {"gpus": 1 if setting.gpu else 0},
        "output": {"uri": f"file://{output}"},
    }
    document = {
        "apiVersion": "kubetune.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": "qlora-bench"},
        "spec": spec,
    }
    return trainer_config_json(render_trainer_config(parse_finetunejob(document)))


# ---- measuring -------------------------------------------------------------------------


class GpuPeak(threading.Thread):
    """Polls ``nvidia-smi`` for the peak GPU memory of one process."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        query = [
            "nvidia-smi",
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
        ]
        while not self.done.wait(0.2):
            lines = subprocess.run(query, capture_output=True, text=True, check=False).stdout
            for line in lines.splitlines():
                pid, _, used = line.partition(",")
                if pid.strip() == str(self.pid):
                    self.peak = max(self.peak, int(used.strip()) * 2**20)


def measure(command: list[str], env: dict[str, str], gpu: bool, log: Path) -> int:
    """Run one side; return its peak memory in bytes (GPU, or RSS without a GPU)."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        poller = GpuPeak(process.pid) if gpu else None
        if poller is not None:
            poller.start()
        _, status, usage = os.wait4(process.pid, 0)
        if poller is not None:
            poller.done.set()
            poller.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[-3:]} failed; log: {log}\n{log.read_text()[-3000:]}")
    return poller.peak if poller is not None else usage.ru_maxrss * 1024


def run_side(
    side: str, folder: Path, model_dir: Path, data: Path, setting: Setting
) -> dict[str, Any]:
    output = folder / side
    output.mkdir(parents=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "KUBETUNE_METRICS_PORT": "0",
        "PYTHONPATH": str(REPO),
    }
    if side == "ours":
        config = folder / "config.json"
        config.write_text(kubetune_config(model_dir, data, output / "result", setting))
        env |= {"KUBETUNE_WORK_DIR": str(output), "KUBETUNE_TERMINATION_PATH": str(output / "term")}
        command = [sys.executable, "-m", "kubetune_trainer", "--config", str(config)]
    else:
        arguments = json.dumps([str(model_dir), str(data), str(output), asdict(setting)])
        command = [sys.executable, __file__, "--child-baseline", arguments]
    peak = measure(command, env, setting.gpu, folder / f"{side}.log")
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return {"tokens_per_second": throughput(records, setting.warmup), "peak_memory_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model shape (runs on CPU)")
    parser.add_argument("--seq-len", type=int, help="default 2048, 256 with --tiny")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, help="default 30, 12 with --tiny")
    parser.add_argument("--warmup", type=int, default=5, help="steps left out of tokens/s")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "kubetune-bench"
    )
    parser.add_argument("--child-baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_baseline:
        model_dir, data, output, setting = json.loads(args.child_baseline)
        plain_trl(Path(model_dir), Path(data), Path(output), Setting(**setting))
        return

    import torch

    gpu = torch.cuda.is_available()
    setting = Setting(
        seq_len=args.seq_len or (256 if args.tiny else 2048),
        batch_size=args.batch_size,
        steps=args.steps or (12 if args.tiny else 30),
        warmup=min(args.warmup, 3) if args.tiny else args.warmup,
        gpu=gpu,
    )
    shape = TINY if args.tiny else LLAMA_3_1_8B
    model_dir = base_model(shape, args.cache / ("tiny" if args.tiny else "llama-3.1-8b-shape"), gpu)
    liger = "installed" if _installed("liger_kernel") else "not installed"
    device = torch.cuda.get_device_name() if gpu else "CPU (no GPU: memory is peak RSS)"
    print(
        f"device: {device}; shape: {'tiny' if args.tiny else 'Llama-3.1-8B'}; liger-kernel {liger}"
    )
    print(f"setting: {setting}")
    with tempfile.TemporaryDirectory(prefix="qlora-bench-") as tmp:
        folder = Path(tmp)
        data = synthetic_text(model_dir, setting, folder / "train.jsonl")
        results = {
            side: run_side(side, folder, model_dir, data, setting) for side in ("baseline", "ours")
        }
    for side, result in results.items():
        print(
            f"{side:9s} {result['tokens_per_second']:10.1f} tokens/s   "
            f"peak {'GPU' if gpu else 'RSS'} {result['peak_memory_bytes'] / 2**30:6.2f} GiB"
        )
    speed = results["ours"]["tokens_per_second"] / results["baseline"]["tokens_per_second"]
    memory = results["ours"]["peak_memory_bytes"] / results["baseline"]["peak_memory_bytes"]
    verdict = "met" if speed >= 1.3 and memory <= 1.0 else "not met"
    print(f"ours / baseline: {speed:.2f}x tokens/s, {memory:.2f}x memory")
    print(f"target ours >= 1.3x tokens/s at <= 1.0x memory: {verdict}")
    print(json.dumps({"setting": asdict(setting), "results": results}))


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
