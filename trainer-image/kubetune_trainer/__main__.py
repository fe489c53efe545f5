"""``kubetune-trainer`` / ``python -m kubetune_trainer``: the container's entry point.

    KUBETUNE_CONFIG=/etc/kubetune/config.json kubetune-trainer
    kubetune-trainer --config config.json

Reads the TrainerConfig the operator rendered, runs it, writes the termination message
(:mod:`kubetune_contract.termination`) and exits with a code from
:mod:`kubetune_contract.exit_codes`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from kubetune_contract import termination
from kubetune_trainer.config import config_path, load
from kubetune_trainer.run import RunOptions, execute


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubetune-trainer", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="trainer config file (default: $KUBETUNE_CONFIG)")
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
