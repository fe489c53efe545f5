"""``kubetune run FILE``: train a FineTuneJob manifest on this machine, no cluster.

The same validation and run-config render as the operator, then the trainer as a child
process (``kubetune-trainer local``, :mod:`kubetune.cli.trainer`) with a progress bar and
a final summary. Exits with the trainer's exit code (see ``kubetune_contract.exit_codes``):
5 after SIGTERM or Ctrl-C, which save a checkpoint at the end of the step; ``--resume``
continues from it.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from kubetune.cli.trainer import run_trainer


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


def run(args: argparse.Namespace) -> int:
    argv = ["local", "--metrics-port", str(args.metrics_port)]
    argv += ["--resume-command", shlex.join(["kubetune", "run", "--resume", str(args.file)])]
    if args.work_dir is not None:
        argv += ["--work-dir", str(args.work_dir)]
    if args.resume:
        argv.append("--resume")
    if args.no_progress:
        argv.append("--no-progress")
    return run_trainer("run", argv, manifest=args.file)
