"""``kubetune-trainer eval --config C --adapter URI --output O``: the job's evaluation of a
published result against its base model, with a table of the scores (``kubetune eval``).

The report (``evaluation.md``, ``evaluation.png``, ``evaluation.jsonl``) goes to
``--output`` (a folder or a storage URI). Exit code 0 when the gate passes (or there is
none), 1 when it fails, the trainer's codes otherwise (3: invalid config, data or model;
4: storage unreachable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune_contract.evaluation.records import LABELS
from kubetune_trainer.config import load
from kubetune_trainer.errors import TrainerError

GATE_FAILED = 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a published adapter against its base model"
    )
    parser.add_argument("--config", type=Path, required=True, help="the job's trainer config")
    parser.add_argument(
        "--adapter", required=True, metavar="URI", help="the result folder (the job's output.uri)"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="where the report goes, a folder or URI"
    )
    parser.add_argument(
        "--max-prompts", type=_positive, default=None, help="evaluate only the first N prompts"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune_trainer.evaluation.local import evaluate_result

    try:
        done = evaluate_result(
            load(args.config), args.adapter, args.output, max_prompts=args.max_prompts
        )
    except TrainerError as error:
        print(f"error: {error}")
        return error.exit_code
    result = done.result
    print(f"{len(result.records)} prompts: {result.headline}")
    width = max(len(LABELS.get(m, m)) for m in result.comparisons)
    print(f"  {'metric':<{width}}  {'base':>7}  {'tuned':>7}  {'delta':>7}")
    for metric, score in result.comparisons.items():
        label = LABELS.get(metric, metric)
        print(f"  {label:<{width}}  {score.base:7.4f}  {score.tuned:7.4f}  {score.delta:+7.4f}")
    if result.gate is not None:
        print(f"gate {'passed' if result.gate.passed else 'failed'}:")
        for check in result.gate.checks:
            print(f"  {'met' if check.met else 'NOT met'}: {check.sentence}")
    print("report: " + ", ".join(done.files))
    return GATE_FAILED if result.gate is not None and not result.gate.passed else 0
