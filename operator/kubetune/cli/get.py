"""``kubetune get``: FineTuneJobs as a table (state, steps, loss, eval loss, ETA, evaluation,
age)."""

from __future__ import annotations

import argparse
from typing import Any

from kubetune.cli.kube_client import ClusterError, add_cluster_arguments, connect, list_jobs
from kubetune.cli.views import HEADERS, job_row, now_utc, table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("get", help="list FineTuneJobs with their progress")
    add_cluster_arguments(parser)
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list jobs in every namespace"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        cluster = connect(args)
        jobs = list_jobs(cluster, args.all_namespaces)
    except ClusterError as error:
        print(f"error: {error}")
        return 1
    if not jobs:
        where = "any namespace" if args.all_namespaces else f"namespace {cluster.namespace}"
        print(f"No FineTuneJobs in {where}.")
        return 0
    now = now_utc()
    jobs.sort(key=lambda j: (j["metadata"].get("namespace", ""), j["metadata"]["name"]))
    headers = ["NAMESPACE", *HEADERS] if args.all_namespaces else HEADERS
    print(table(headers, [job_row(j, now, args.all_namespaces) for j in jobs]))
    return 0
