"""``kubetune run FILE``: train a FineTuneJob manifest in this process, no cluster.

The same validation and trainer-config render as the operator, then the trainer
in-process with a progress bar and a final summary. Exits with the trainer's exit code
(see ``kubetune_contract.exit_codes``): 5 after SIGTERM or Ctrl-C, which save a
checkpoint at the end of the step; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="train a FineTuneJob manifest locally (needs the trainer extra)"
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a FineTuneJob manifest")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="scratch folder (default: a temporary one)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoint in the output instead of starting over",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def needs_trainer(command: str, missing: ImportError) -> int:
    """What a command that runs the trainer says when the trainer extra is not installed."""
    print(
        f"kubetune {command} needs the trainer extra (pip install 'kubetune[trainer]'): {missing}"
    )
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        from kubetune_trainer.local import format_summary, run_manifest
    except ImportError as missing:
        return needs_trainer("run", missing)
    summary = run_manifest(
        args.file,
        work_dir=args.work_dir,
        progress=not args.no_progress,
        metrics_port=args.metrics_port,
        resume=args.resume,
    )
    print(format_summary(summary, args.file))
    return summary.exitCode
