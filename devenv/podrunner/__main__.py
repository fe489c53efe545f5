"""``python -m devenv.podrunner``: run local-exec pods until Ctrl-C (dev only)."""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from devenv.podrunner.runner import PodRunner


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.podrunner",
        description="Run the pods of kubetune.io/local-exec=true nodes as local processes "
        "(a kubelet stand-in for the test/dev cluster; never for a real cluster).",
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--workdir", type=Path, help="pod dirs and logs (default: a temp dir)")
    parser.add_argument(
        "--node", action="append", help="only these nodes (default: every local-exec node)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubetune-podrunner-"))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PodRunner(args.kubeconfig, workdir, nodes=args.node):
        logging.getLogger("devenv.podrunner").info("pod dirs and logs in %s", workdir)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
