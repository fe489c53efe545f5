"""``kubetune eval FILE --adapter URI``: evaluate a published result against its base model.

FILE is the job's manifest: its ``spec.evaluation`` says which prompts and metrics, its
``spec.model`` is the base. The CLI renders its run config as ``kubetune run`` does and
the trainer evaluates (``kubetune-trainer eval``, a child process). The report
(``evaluation.md``, ``evaluation.png``, ``evaluation.jsonl``) goes to ``--output`` (a
folder or a storage URI). Exit code 0 when the gate passes (or there is none), 1 when it
fails, the trainer's codes otherwise (3: invalid manifest, data or model; 4: storage
unreachable).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune.cli.trainer import run_trainer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a published adapter against its base model (needs the trainer extra)",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the job's FineTuneJob manifest")
    parser.add_argument(
        "--adapter", required=True, metavar="URI", help="the result folder (the job's output.uri)"
    )
    parser.add_argument(
        "-o",
        "--output",
        help="where the report goes, a folder or URI (default: ./<FILE name>-evaluation)",
    )
    parser.add_argument(
        "--max-prompts", type=int, default=None, help="evaluate only the first N prompts"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    output = args.output or f"{args.file.stem}-evaluation"
    argv = ["eval", "--adapter", args.adapter, "--output", output]
    if args.max_prompts is not None:
        argv += ["--max-prompts", str(args.max_prompts)]
    return run_trainer("eval", argv, manifest=args.file)
