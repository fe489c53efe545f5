"""``kubetune-trainer data check FILE`` and ``data code-instructions SRC`` (``kubetune data``).

``check`` applies the ``dataset.quality`` rules (from a manifest, flags, or the defaults)
to a data file and prints the report the trainer would save; exits 1 when a ``fail`` rule
fired. ``code-instructions`` turns documented Python functions in a folder, an archive
or a URI into instruction/response JSONL (the ``codeFunctions`` format's logic). Both read
files and URIs with the trainer's own readers, so a file that passes here loads in a job.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from kubetune_contract.api.dataset import QualitySpec
from kubetune_contract.api.loading import read_documents
from kubetune_contract.data.code import ARCHIVE_SUFFIXES, extract
from kubetune_contract.data.quality import DEFAULT_SPEC, check
from kubetune_trainer import storage
from kubetune_trainer.data.readers import read_source
from kubetune_trainer.errors import TrainerError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("data", help="dataset tools: quality check, code extraction")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    checker = commands.add_parser("check", help="run the quality rules over a data file")
    checker.add_argument("file", help="data file, folder or URI (JSONL, JSON, CSV, Parquet)")
    checker.add_argument("--manifest", type=Path, help="take dataset.quality from this FineTuneJob")
    checker.add_argument("--min-length", type=int, help="rows shorter than this many characters")
    checker.add_argument("--max-length", type=int, help="rows longer than this many characters")
    checker.add_argument("--max-newline-ratio", help='largest newline share, e.g. "0.3"')
    checker.add_argument("--near-duplicates", help='similarity threshold, e.g. "0.9"')
    checker.add_argument(
        "--action", choices=["drop", "warn", "fail"], default="drop", help="action of flag rules"
    )
    checker.add_argument("--json", action="store_true", help="print the report as JSON")
    checker.set_defaults(handler=run_check)
    code = commands.add_parser(
        "code-instructions", help="documented Python functions -> instruction JSONL"
    )
    code.add_argument("source", help="a folder, an archive (.zip/.tar.gz) or a URI")
    code.add_argument("-o", "--output", type=Path, help="JSONL file (default: stdout)")
    code.set_defaults(handler=run_code)


def _as_uri(location: str) -> str:
    return location if "://" in location else Path(location).resolve().as_uri()


def quality_spec(args: argparse.Namespace) -> QualitySpec:
    """The rules: a manifest's dataset.quality, else the flags, else the defaults."""
    if args.manifest is not None:
        documents = list(read_documents(args.manifest.read_text()))
        job = parse_finetunejob(documents[0].content if documents else None)
        if job.spec.dataset is None or job.spec.dataset.quality is None:
            raise InvalidManifest([])
        return job.spec.dataset.quality
    flags: dict[str, Any] = {}
    if args.min_length is not None or args.max_length is not None:
        flags["length"] = {"min": args.min_length, "max": args.max_length, "action": args.action}
    if args.max_newline_ratio is not None:
        flags["newlineRatio"] = {"max": args.max_newline_ratio, "action": args.action}
    if args.near_duplicates is not None:
        flags["duplicates"] = {"nearThreshold": args.near_duplicates, "action": args.action}
    if not flags:
        return DEFAULT_SPEC
    flags.setdefault("garbled", {"action": args.action})
    flags.setdefault("duplicates", {"action": args.action})
    return QualitySpec.model_validate(flags)


def run_check(args: argparse.Namespace) -> int:
    try:
        spec = quality_spec(args)
        files = read_source(_as_uri(args.file))
    except (InvalidManifest, ValidationError) as error:
        print(f"error: no usable quality rules: {error or 'the manifest has no dataset.quality'}")
        return 2
    except (TrainerError, OSError) as error:
        print(f"error: {error}")
        return 2
    rows = [row for source in files for row in source.rows]
    report = check(rows, spec)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{args.file}: {report.rowsIn} rows, {len(report.kept)} kept")
        for result in report.results:
            print(f"  {result.rule:<16} {len(result.rows):>6} rows  ({result.action})")
            for example in result.examples:
                print(f"      row {example['row']}: {example['text']!r}")
    return 1 if report.failed else 0


def _files(source: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of the files under ``source`` (a local folder/file or a URI)."""
    path = Path(source)
    if "://" not in source and path.is_dir():
        return [(str(p), p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file()]
    if "://" not in source:
        return [(source, path.read_bytes())]
    if source.endswith((".py", *ARCHIVE_SUFFIXES)):
        return [(source, storage.read_bytes(source))]
    return [
        (storage.join(source, name), storage.read_bytes(storage.join(source, name)))
        for name in storage.list_names(source)
    ]


def run_code(args: argparse.Namespace) -> int:
    try:
        result = extract(_files(args.source))
    except Exception as error:  # storage/OS errors carry their own explanation
        print(f"error: cannot read {args.source}: {error}", file=sys.stderr)
        return 2
    lines = "".join(json.dumps(row) + "\n" for row in result.rows)
    if args.output:
        args.output.write_text(lines)
    else:
        sys.stdout.write(lines)
    for skipped in result.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    print(
        f"{len(result.rows)} functions from {result.files} files ({len(result.skipped)} skipped)",
        file=sys.stderr,
    )
    return 0 if result.rows else 1
