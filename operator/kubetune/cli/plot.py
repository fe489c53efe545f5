"""``kubetune plot NAME|URI``: loss curves to a PNG from a job's ``metrics.jsonl``;
``--evaluation``: the base-against-tuned bar chart from its ``evaluation.jsonl``.

NAME is a FineTuneJob (its ``spec.output.uri`` holds both files); a URI or path points at
the output folder or the file itself. Reading ``s3://``/``gs://``/``az://`` uses the
trainer's storage module and credentials from the environment.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune.cli.kube_client import ClusterError, add_cluster_arguments, connect, get_job
from kubetune_contract.evaluation.records import EXAMPLES_FILE

METRICS_FILE = "metrics.jsonl"


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


def _read(location: str, name: str) -> str:
    """The text of the file ``name`` at ``location`` (the file, or a folder containing it)."""
    from kubetune_trainer import storage

    uri = location if "://" in location else Path(location).resolve().as_uri()
    if not uri.endswith(".jsonl"):
        uri = storage.join(uri, name)
    return storage.read_bytes(uri).decode()


def _draw(text: str, output: Path, name: str, evaluation: bool) -> None:
    """Raises ValueError when the file holds nothing to draw."""
    if evaluation:
        from kubetune_contract.evaluation.chart import plot_comparison
        from kubetune_contract.evaluation.records import aggregate, metrics_of, read_records

        records = read_records(text.splitlines())
        plot_comparison(aggregate(records, metrics_of(records)), output, title=name)
        return
    from kubetune_contract.curves import plot_curves, read_records

    plot_curves(read_records(text.splitlines()), output, title=name)


def run(args: argparse.Namespace) -> int:
    target: str = args.target
    file_name = EXAMPLES_FILE if args.evaluation else METRICS_FILE
    name = Path(target.rstrip("/")).name.removesuffix(".jsonl") or "job"
    try:
        if not _looks_like_location(target):
            job = get_job(connect(args), target)
            name, target = target, job["spec"]["output"]["uri"]
        text = _read(target, file_name)
    except ClusterError as error:
        print(f"error: {error}")
        return 1
    except Exception as error:  # storage errors carry their own explanation
        print(f"error: cannot read {file_name} at {target}: {error}")
        return 1
    output = args.output or Path(f"{name}-{'evaluation' if args.evaluation else 'curves'}.png")
    try:
        _draw(text, output, name, args.evaluation)
    except (ValueError, KeyError) as error:
        print(f"error: {file_name} at {target}: nothing to draw ({error})")
        return 1
    print(f"wrote {output}")
    return 0
