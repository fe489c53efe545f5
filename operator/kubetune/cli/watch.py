"""``kubetune watch NAME``: a live progress line until the job finishes.

Polls the FineTuneJob's status (what the operator mirrors from the trainer) every
``--interval`` seconds; on a terminal it redraws one line, otherwise it prints a line
whenever something changed. Exits 0 when the job succeeds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from kubetune.cli.kube_client import ClusterError, add_cluster_arguments, connect, get_job
from kubetune.cli.views import final_message, progress_line
from kubetune_contract.api.status import SETTLED_STATES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("watch", help="follow a FineTuneJob's progress live")
    parser.add_argument("name", help="FineTuneJob name")
    add_cluster_arguments(parser)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    parser.add_argument(
        "--timeout", type=float, default=None, help="give up after this many seconds"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    live = sys.stdout.isatty()
    deadline = time.monotonic() + args.timeout if args.timeout else None
    last = ""
    try:
        cluster = connect(args)
        while True:
            job = get_job(cluster, args.name)
            line = progress_line(job)
            if live:
                print("\r" + line, end="", flush=True)
            elif line != last:
                print(line, flush=True)
            last = line
            if (job.get("status") or {}).get("state") in SETTLED_STATES:
                break
            if deadline is not None and time.monotonic() > deadline:
                print(
                    f"\nstill {(job.get('status') or {}).get('state', 'Pending')} after "
                    f"{args.timeout:.0f}s"
                )
                return 1
            time.sleep(args.interval)
    except ClusterError as error:
        print(f"\nerror: {error}")
        return 1
    except KeyboardInterrupt:
        print()
        return 130
    if live:
        print()
    print(final_message(job))
    return 0 if job["status"]["state"] == "Succeeded" else 1
