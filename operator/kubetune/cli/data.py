"""``kubetune data check FILE`` and ``kubetune data code-instructions SRC``.

The trainer's ``data`` command (:mod:`kubetune.cli.trainer`): it reads files and URIs with
the trainer's own readers, so a file that passes the check loads in a job. Every argument
after ``data`` goes to it unparsed, ``--help`` included, so the two never disagree about
flags.
"""

from __future__ import annotations

import argparse
from typing import Any

from kubetune.cli.trainer import run_trainer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="dataset tools: quality check, code extraction (needs the trainer extra)",
        # No option of its own, not even -h: "--help" and every flag are the trainer's.
        add_help=False,
        prefix_chars="\0",
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER, metavar="check|code-instructions")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_trainer("data", ["data", *args.arguments])
