"""``kubetune validate FILE...``: check manifests offline with the API models.

Prints ``OK <file> <name>`` per valid FineTuneJob and ``<file>[#doc] path.to.field:
message`` per problem; exits 1 when anything is invalid. Never a traceback for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kubetune.cli.manifest import ManifestError, read_file
from kubetune_contract.api import InvalidManifest, parse_finetunejob


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate", help="validate FineTuneJob manifests without a cluster"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML manifests")
    parser.set_defaults(handler=run)


def validate_file(path: Path) -> tuple[list[str], list[str]]:
    """(OK lines, error lines) for one file."""
    try:
        documents = read_file(path)
    except ManifestError as error:
        return [], error.lines
    ok: list[str] = []
    errors: list[str] = []
    for document in documents:
        label = f"{path}#{document.index}" if len(documents) > 1 else str(path)
        try:
            job = parse_finetunejob(document.content)
        except InvalidManifest as invalid:
            errors.extend(f"{label}: {problem}" for problem in invalid.errors)
        else:
            ok.append(f"OK {label} {job.metadata.name}")
    return ok, errors


def run(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        ok, errors = validate_file(path)
        for line in ok:
            print(line)
        for line in errors:
            print(line, file=sys.stderr)
        failed = failed or bool(errors)
    return 1 if failed else 0
