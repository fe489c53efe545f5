"""``kubetune dev``: control plane + S3 + operator + pod runner on this machine.

    kubetune dev                      # prints the exports; Ctrl-C stops and cleans up
    kubectl apply -f examples/quickstart-cluster.yaml
    kubetune watch quickstart

For development only: trainer pods run as local processes through a kubelet stand-in
(:mod:`kubetune.devenv.podrunner`); see :mod:`kubetune.devenv.dev` for what starts.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run a local dev cluster (control plane, S3, operator, pod runner) until Ctrl-C",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="an empty or new directory to keep everything in (logs, S3 data, pod dirs) "
        "instead of a temporary directory that is removed at exit",
    )
    parser.add_argument(
        "--no-operator",
        dest="operator",
        action="store_false",
        help="don't start the operator (run your own `kubetune operator` against it)",
    )
    parser.add_argument(
        "--crd",
        type=Path,
        metavar="FILE",
        help="apply this CRD instead of the one generated from the API models "
        "(a CRD under development)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubetune.devenv.build import BuildError
    from kubetune.devenv.dev import DevEnvironment, write_env_file
    from kubetune.devenv.process import ComponentError

    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        # An old etcd, PKI and S3 volume would be half reused: start clean instead.
        print(f"kubetune dev: --workdir {args.workdir} is not empty", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    env = DevEnvironment(args.workdir, operator=args.operator, crd=args.crd)
    try:
        env.start()
    except (BuildError, ComponentError, TimeoutError) as e:
        print(f"kubetune dev: failed to start: {e}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(env.settings())
        print(f"# the same, to source in another shell: {write_env_file(env)}")
        print(
            "# try: kubectl apply -f examples/quickstart-cluster.yaml && kubetune watch quickstart"
        )
        print("# Ctrl-C stops everything.", flush=True)
        while not stop.wait(2.0):
            env.check_alive()
    except ComponentError as e:
        print(f"kubetune dev: {e}", file=sys.stderr)
        return 1
    finally:
        env.stop()
    return 0
