"""The ``kubetune`` command line: one subcommand per module in this package.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function taking the parsed arguments and returning an exit code.
Heavy imports (the Kubernetes client) happen inside handlers, so that ``kubetune
validate`` stays fast and works with only the base install. The commands that need the
trainer (run, eval, plot, data) never import it: they run it as a child process
(:mod:`kubetune.cli.trainer`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kubetune import __version__
from kubetune.cli import (
    crd,
    data,
    estimate,
    evaluate,
    get,
    logs,
    operator,
    plot,
    run,
    validate,
    watch,
)

SUBCOMMANDS = (crd, validate, run, evaluate, estimate, get, watch, logs, plot, data, operator)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="kubetune",
        description="kubetune: LLM fine-tuning as a Kubernetes resource (FineTuneJob).",
    )
    parser.add_argument("--version", action="version", version=f"kubetune {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kubetune`` console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
