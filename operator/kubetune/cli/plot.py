"""``kubetune plot NAME|URI``: loss curves to a PNG from a job's ``metrics.jsonl``.

NAME is a FineTuneJob (its ``spec.output.uri`` holds ``metrics.jsonl``); a URI or path
points at the output folder or the file itself. Reading ``s3://``/``gs://``/``az://``
uses the trainer's storage module and credentials from the environment.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kubetune.cli.cluster import ClusterError, add_cluster_arguments, connect, get_job

METRICS_FILE = "metrics.jsonl"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("plot", help="draw loss curves of a job to a PNG")
    parser.add_argument("target", metavar="NAME|URI", help="FineTuneJob name, output URI or path")
    add_cluster_arguments(parser)
    parser.add_argument("-o", "--output", type=Path, help="PNG path (default: <name>-curves.png)")
    parser.set_defaults(handler=run)


def _looks_like_location(target: str) -> bool:
    return "://" in target or "/" in target or Path(target).exists()


def _read_metrics(location: str) -> str:
    """The text of metrics.jsonl at ``location`` (the file, or a folder containing it)."""
    from kubetune_trainer import storage

    uri = location if "://" in location else Path(location).resolve().as_uri()
    if not uri.endswith(".jsonl"):
        uri = storage.join(uri, METRICS_FILE)
    return storage.read_bytes(uri).decode()


def run(args: argparse.Namespace) -> int:
    from kubetune.curves import plot_curves, read_records

    target: str = args.target
    name = Path(target.rstrip("/")).name.removesuffix(".jsonl") or "job"
    try:
        if not _looks_like_location(target):
            job = get_job(connect(args), target)
            name, target = target, job["spec"]["output"]["uri"]
        text = _read_metrics(target)
    except ClusterError as error:
        print(f"error: {error}")
        return 1
    except Exception as error:  # storage errors carry their own explanation
        print(f"error: cannot read {METRICS_FILE} at {target}: {error}")
        return 1
    output = args.output or Path(f"{name}-curves.png")
    try:
        plot_curves(read_records(text.splitlines()), output, title=name)
    except ValueError as error:
        print(f"error: {error}")
        return 1
    print(f"wrote {output}")
    return 0
