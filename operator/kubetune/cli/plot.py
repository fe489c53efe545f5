"""``kubetune plot NAME|URI``: loss curves to a PNG from a job's ``metrics.jsonl``;
``--evaluation``: the base-against-tuned bar chart from its ``evaluation.jsonl``.

NAME is a FineTuneJob, looked up in the cluster here: its ``spec.output.uri`` holds both
files. A URI or path points at the output folder or the file itself. Reading and drawing
is the trainer's ``plot`` command (:mod:`kubetune.cli.trainer`), whose storage module reads
``s3://``/``gs://``/``az://`` with credentials from the environment.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune.cli.kube_client import ClusterError, add_cluster_arguments, connect, get_job
from kubetune.cli.trainer import run_trainer
from kubetune_contract.evaluation.records import EXAMPLES_FILE


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot", help="draw loss curves (or the evaluation's base-against-tuned chart) to a PNG"
    )
    parser.add_argument("target", metavar="NAME|URI", help="FineTuneJob name, output URI or path")
    add_cluster_arguments(parser)
    parser.add_argument(
        "-o", "--output", type=Path, help="PNG path (default: <name>-curves.png or -evaluation.png)"
    )
    parser.add_argument(
        "--evaluation",
        action="store_true",
        help=f"draw base against tuned per metric from {EXAMPLES_FILE} (spec.evaluation)",
    )
    parser.set_defaults(handler=run)


def _looks_like_location(target: str) -> bool:
    return "://" in target or "/" in target or Path(target).exists()


def run(args: argparse.Namespace) -> int:
    target: str = args.target
    argv = ["plot", target]
    if not _looks_like_location(target):
        try:
            job = get_job(connect(args), target)
        except ClusterError as error:
            print(f"error: {error}")
            return 1
        argv = ["plot", job["spec"]["output"]["uri"], "--title", target]
    if args.output is not None:
        argv += ["--output", str(args.output)]
    if args.evaluation:
        argv.append("--evaluation")
    return run_trainer("plot", argv)
