"""``kubetune logs NAME``: the trainer's logs (rank 0, the newest pod), optionally followed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kubetune.cli.kube_client import ClusterError, add_cluster_arguments, connect, explain, get_job

JOB_LABEL = "kubetune.io/job"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("logs", help="print (and follow) a FineTuneJob's trainer logs")
    parser.add_argument("name", help="FineTuneJob name")
    add_cluster_arguments(parser)
    parser.add_argument("-f", "--follow", action="store_true", help="stream new lines")
    parser.add_argument("--rank", type=int, default=0, help="node rank of multi-node jobs")
    parser.set_defaults(handler=run)


def pick_pod(pods: list[dict[str, Any]], rank: int) -> dict[str, Any] | None:
    """The newest pod of the wanted node rank (single-node pods have no index: rank 0)."""

    def rank_of(pod: dict[str, Any]) -> int:
        annotations = pod["metadata"].get("annotations") or {}
        return int(annotations.get(COMPLETION_INDEX, "0"))

    candidates = [p for p in pods if rank_of(p) == rank]
    candidates.sort(key=lambda p: p["metadata"].get("creationTimestamp") or "")
    return candidates[-1] if candidates else None


def run(args: argparse.Namespace) -> int:
    try:
        cluster = connect(args)
        get_job(cluster, args.name)
        core = cluster.core()
        where = f"pods of finetunejob {args.name!r}"
        try:
            listed = core.list_namespaced_pod(
                cluster.namespace, label_selector=f"{JOB_LABEL}={args.name}"
            )
        except Exception as error:
            raise explain(error, cluster.api.configuration.host, where) from None
        pods = [cluster.api.sanitize_for_serialization(p) for p in listed.items]
        pod = pick_pod(pods, args.rank)
        if pod is None:
            print(f"finetunejob {args.name!r} has no trainer pod yet (rank {args.rank})")
            return 1
        name = pod["metadata"]["name"]
        try:
            stream = core.read_namespaced_pod_log(
                name,
                cluster.namespace,
                container="trainer",
                follow=args.follow,
                _preload_content=False,
            )
            for chunk in stream.stream():
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except Exception as error:
            raise explain(error, cluster.api.configuration.host, f"logs of pod {name}") from None
    except ClusterError as error:
        print(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
