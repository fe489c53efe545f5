"""Benchmark: evaluation time on CPU for the tiny Llama, and what it adds to the quickstart.

    .venv/bin/python bench/evaluation_cpu.py [--prompts 100] [--repeats 3]
        [--batch-sizes 1,8,16] [--max-new-tokens 24] [--skip-quickstart]

Part 1, seconds per 100 prompts: a LoRA is trained for 4 steps on the quickstart data,
then :func:`kubetune_trainer.evaluation.compare.evaluate` (what the job's stage runs:
load the base model, answer, load base + adapter, answer, score) answers ``--prompts``
quickstart prompts at each batch size, greedy, ``--max-new-tokens`` (24 fits the
quickstart's one-sentence answers). Median of ``--repeats`` runs, scaled to 100 prompts;
both models' answers are included (200 generations per 100 prompts).

Part 2, the quickstart: ``kubetune run examples/quickstart.yaml`` against ``kubetune run
examples/evaluation.yaml`` (the same job plus the evaluation of its 48 validation prompts),
each in a fresh process, alternating, ``--repeats`` times. Prints the median wall times,
their difference, and the evaluation's own time from the manifest.

It prints numbers only: no threshold is asserted (the machine is shared; rerun for yours).
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"
WITH_EVALUATION = REPO / "examples" / "evaluation.yaml"
QUICKSTART_TRAIN = REPO / "examples" / "quickstart-data" / "train.jsonl"


def _spec(output: Path, prompts: int, batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    return {
        "method": "sft",
        "model": {"uri": "builtin://tiny-llama"},
        "adapter": {"type": "lora", "lora": {"rank": 8, "alpha": 16}},
        "dataset": {
            "train": {"uri": f"file://{QUICKSTART_TRAIN}", "format": "messages"},
            "maxLength": 128,
        },
        "training": {
            "maxSteps": 4,
            "batchSize": 8,
            "precision": "fp32",
            "gradientCheckpointing": False,
        },
        "resources": {"gpus": 0},
        "evaluation": {
            "dataset": {"uri": f"file://{QUICKSTART_TRAIN}", "format": "messages"},
            "maxPrompts": prompts,
            "generation": {"maxNewTokens": max_new_tokens, "batchSize": batch_size},
        },
        "output": {"uri": f"file://{output}"},
    }


def per_hundred_prompts(args: argparse.Namespace, work: Path) -> None:
    from kubetune.render.trainer_config import render_trainer_config
    from kubetune_contract.api.loading import parse_finetunejob
    from kubetune_trainer.evaluation import compare, examples
    from kubetune_trainer.run import RunOptions, train
    from kubetune_trainer.sources import resolve_model

    def config(batch_size: int) -> Any:
        document = {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": "bench"},
            "spec": _spec(work / "out", args.prompts, batch_size, args.max_new_tokens),
        }
        return render_trainer_config(parse_finetunejob(document))

    trained = config(args.batch_sizes[0])
    # A 4-step LoRA; its own evaluation (the stage) is the first timed sample below.
    summary = train(trained, RunOptions(work_dir=work / "work", metrics_port=0, print_logs=False))
    assert summary.exitCode == 0, summary.message
    model_dir = resolve_model("builtin://tiny-llama")
    print(f"part 1: {args.prompts} prompts, greedy, maxNewTokens {args.max_new_tokens}")
    for batch_size in args.batch_sizes:
        spec = config(batch_size).spec
        prompts = examples.load(spec.evaluation, None)
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            compare.evaluate(spec, prompts, model_dir, work / "work" / "final")
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        print(
            f"  batch {batch_size:>3}: {median * 100 / len(prompts):6.2f} s per 100 prompts "
            f"(median of {args.repeats}: {', '.join(f'{s:.2f}' for s in seconds)} s "
            f"for {len(prompts)})"
        )


#: ``kubetune`` itself, from this interpreter (and its PYTHONPATH).
_CLI = "import sys; from kubetune.cli import main; sys.exit(main(sys.argv[1:]))"


def _kubetune_run(manifest: Path, work: Path) -> float:
    env = {**os.environ, "KUBETUNE_METRICS_PORT": "0", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            _CLI,
            "run",
            str(manifest),
            "--no-progress",
            "--work-dir",
            str(work),
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def quickstart_overhead(args: argparse.Namespace, work: Path) -> None:
    plain: list[float] = []
    evaluated: list[float] = []
    stage: list[float] = []
    for repeat in range(args.repeats):
        plain.append(_kubetune_run(QUICKSTART, work / f"plain-{repeat}"))
        evaluated.append(_kubetune_run(WITH_EVALUATION, work / f"evaluated-{repeat}"))
        manifest = json.loads((REPO / "out" / "evaluation" / "manifest.json").read_text())
        stage.append(manifest["evaluation"]["durationSeconds"])
        headline = manifest["evaluation"]["headline"]
    a, b = statistics.median(plain), statistics.median(evaluated)
    print(f"part 2: quickstart ({args.repeats} runs each, fresh processes)")
    print(f"  without evaluation: {a:6.1f} s  ({', '.join(f'{s:.1f}' for s in plain)})")
    print(f"  with evaluation:    {b:6.1f} s  ({', '.join(f'{s:.1f}' for s in evaluated)})")
    print(f"  overhead:           {b - a:+6.1f} s  ({(b - a) / a:+.0%})")
    print(f"  the stage itself:   {statistics.median(stage):6.1f} s for 48 prompts; {headline}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-sizes", type=lambda t: [int(x) for x in t.split(",")], default=[1, 8, 16]
    )
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="kubetune-bench-eval-") as scratch:
        per_hundred_prompts(args, Path(scratch))
        if not args.skip_quickstart:
            quickstart_overhead(args, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
