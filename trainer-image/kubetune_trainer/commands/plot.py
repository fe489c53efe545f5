"""``kubetune-trainer plot LOCATION``: loss curves to a PNG from a job's ``metrics.jsonl``;
``--evaluation``: the base-against-tuned bar chart from its ``evaluation.jsonl``.

LOCATION is an output folder or the file itself, a path or a storage URI; ``s3://``,
``gs://`` and ``az://`` are read with the trainer's storage module and credentials from
the environment, as a job reads them. ``kubetune plot NAME`` resolves a FineTuneJob to its
``spec.output.uri`` and runs this with ``--title NAME``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune_contract import curves
from kubetune_contract.evaluation import chart, records
from kubetune_contract.evaluation.records import EXAMPLES_FILE
from kubetune_trainer import storage

METRICS_FILE = "metrics.jsonl"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot", help="draw loss curves (or the evaluation's base-against-tuned chart) to a PNG"
    )
    parser.add_argument("location", metavar="URI", help="output URI or path, or the file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="PNG path (default: <title>-curves.png or <title>-evaluation.png)",
    )
    parser.add_argument(
        "--evaluation",
        action="store_true",
        help=f"draw base against tuned per metric from {EXAMPLES_FILE} (spec.evaluation)",
    )
    parser.add_argument("--title", help="the chart's title (default: the folder's name)")
    parser.set_defaults(handler=run)


def _read(location: str, name: str) -> str:
    """The text of the file ``name`` at ``location`` (the file, or a folder containing it)."""
    uri = location if "://" in location else Path(location).resolve().as_uri()
    if not uri.endswith(".jsonl"):
        uri = storage.join(uri, name)
    return storage.read_bytes(uri).decode()


def _draw(text: str, output: Path, title: str, evaluation: bool) -> None:
    """Raises ValueError when the file holds nothing to draw."""
    if evaluation:
        examples = records.read_records(text.splitlines())
        means = records.aggregate(examples, records.metrics_of(examples))
        chart.plot_comparison(means, output, title=title)
    else:
        curves.plot_curves(curves.read_records(text.splitlines()), output, title=title)


def run(args: argparse.Namespace) -> int:
    location: str = args.location
    file_name = EXAMPLES_FILE if args.evaluation else METRICS_FILE
    title = args.title or Path(location.rstrip("/")).name.removesuffix(".jsonl") or "job"
    try:
        text = _read(location, file_name)
    except Exception as error:  # storage errors carry their own explanation
        print(f"error: cannot read {file_name} at {location}: {error}")
        return 1
    output = args.output or Path(f"{title}-{'evaluation' if args.evaluation else 'curves'}.png")
    try:
        _draw(text, output, title, args.evaluation)
    except (ValueError, KeyError) as error:
        print(f"error: {file_name} at {location}: nothing to draw ({error})")
        return 1
    print(f"wrote {output}")
    return 0
