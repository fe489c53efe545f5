"""``kubetune-trainer`` / ``python -m kubetune_trainer``: the container's entry point.

    KUBETUNE_CONFIG=/etc/kubetune/config.json kubetune-trainer
    kubetune-trainer --config config.json
    kubetune-trainer COMMAND ...        # local, eval, plot, data (kubetune_trainer.commands)

Without a command: reads the TrainerConfig the operator rendered, runs it, writes the
termination message (:mod:`kubetune_contract.termination`) and exits with a code from
:mod:`kubetune_contract.exit_codes`. The commands are the local tools that ``kubetune run``,
``eval``, ``plot`` and ``data`` start as a child process.
"""

from __future__ import annotations

from kubetune_trainer import startup_signals

if __name__ == "__main__":  # the pod's command: hold a stop signal before the slow imports
    startup_signals.hold()

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from kubetune_contract import termination
from kubetune_trainer.commands import SUBCOMMANDS
from kubetune_trainer.config import config_path, load
from kubetune_trainer.run import RunOptions, execute


def run_pod(args: argparse.Namespace) -> int:
    """The pod's run: log lines, the termination message, the summary's exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    summary = execute(lambda: load(config_path(args.config)), RunOptions())
    # Under torchrun every rank of the pod shares one termination-message file: the
    # local rank 0 (on the first node, the one that publishes) writes it.
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        termination.write(summary)
    logging.getLogger("kubetune_trainer").info("%s: %s", summary.outcome, summary.message)
    return summary.exitCode


def build_parser() -> argparse.ArgumentParser:
    """The pod's ``--config`` and every local command."""
    parser = argparse.ArgumentParser(prog="kubetune-trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="trainer config file (default: $KUBETUNE_CONFIG)")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="a local tool instead of the pod's run"
    )
    for module in SUBCOMMANDS:
        module.register(subparsers)
    parser.set_defaults(handler=run_pod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    startup_signals.hold()  # the console script imported this module first
    try:
        args = build_parser().parse_args(argv)
        if args.handler is not run_pod:  # a local command: Ctrl-C as usual
            startup_signals.release()
        code: int = args.handler(args)
        return code
    finally:
        startup_signals.release()


if __name__ == "__main__":
    sys.exit(main())
