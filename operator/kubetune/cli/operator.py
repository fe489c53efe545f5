"""``kubetune operator``: run the FineTuneJob operator (kopf) against the current cluster.

    kubetune operator --all-namespaces --metrics-port 8080
    kubetune operator --namespace ml-team --standalone   # one replica, no peering objects

Credentials: the in-cluster service account, else ``$KUBECONFIG`` / ``~/.kube/config``.
With peering (the default), replicas pause except the one with the highest
``--peering-priority`` (random by default), so a Deployment may run two for
availability; the peering object named by ``--peering`` must exist (the Helm chart
creates it): a ``ClusterKopfPeering`` with ``--all-namespaces``, else a ``KopfPeering``
in every watched namespace. Replicas with equal priorities would all pause, hence the
random default.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from collections.abc import Mapping
from typing import Any

from kubetune.render.options import DEFAULT_GRACE_PERIOD_SECONDS, DEFAULT_TRAINER_IMAGE
from kubetune_contract.pod import METRICS_PORT

DEFAULT_OPERATOR_METRICS_PORT = 8080
DEFAULT_PEERING_NAME = "kubetune"


def _annotation(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class _QuietWatchHandlers(logging.Filter):
    """kopf logs every successful handler call at INFO; for the handlers that run on
    every Job/pod event that is noise: keep those lines for ``--log-level debug``."""

    NOISY = ("Handler 'child_changed' succeeded", "Handler 'finetunejob_changed' succeeded")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOISY)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("operator", help="run the FineTuneJob operator")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_OPERATOR_METRICS_PORT,
        help="port of the operator's /metrics (0: off; default %(default)s)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve a liveness probe here, e.g. http://0.0.0.0:8081/healthz (default: off)",
    )
    parser.add_argument(
        "--trainer-image",
        default=DEFAULT_TRAINER_IMAGE,
        help="trainer image of jobs without spec.image (default %(default)s)",
    )
    parser.add_argument(
        "--grace-period-seconds",
        type=int,
        default=DEFAULT_GRACE_PERIOD_SECONDS,
        help="terminationGracePeriodSeconds of jobs that don't set one: time for the "
        "final checkpoint on preemption (default %(default)s)",
    )
    parser.add_argument(
        "--trainer-metrics-port",
        type=int,
        default=METRICS_PORT,
        help="port the trainer serves its metrics on (default %(default)s)",
    )
    parser.add_argument(
        "--pod-annotation",
        action="append",
        type=_annotation,
        default=[],
        metavar="KEY=VALUE",
        help="annotation for every training pod, e.g. karpenter.sh/do-not-disrupt=true "
        "(repeatable)",
    )
    parser.add_argument(
        "--policy",
        metavar="NAME",
        help="check every new FineTuneJob against the FineTuneJobPolicy NAME (the chart "
        "creates it); refused jobs get Accepted=False and no pods (default: no policy)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=30.0,
        help="seconds between reads of a running trainer's metrics (default %(default)s)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=600.0,
        help="seconds a trainer container may wait for an image that can't be pulled or a "
        "Secret that doesn't exist before its job fails (0: for ever; default %(default)s)",
    )
    parser.add_argument(
        "--progress-write-interval",
        type=float,
        default=15.0,
        help="least seconds between two status writes of a job that change only its "
        "progress (default %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=8,
        help="threads that reconcile jobs (each pass makes the API calls of one job; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--peering",
        default=DEFAULT_PEERING_NAME,
        help="peering object shared by the replicas: a ClusterKopfPeering with "
        "--all-namespaces, else a KopfPeering in each namespace (default %(default)s)",
    )
    parser.add_argument(
        "--peering-priority",
        type=int,
        default=None,
        help="this replica's priority; the highest live one acts (default: random)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="run without peering (a single replica; no peering objects needed)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level (default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text lines, or one JSON object per line with the object reference",
    )
    parser.set_defaults(handler=run)


def peering_identity(env: Mapping[str, str]) -> str | None:
    """This replica's name among its peers: the pod's name in a cluster (the chart sets
    ``KUBETUNE_OPERATOR_POD``), unique per replica and readable in the peering object.

    kopf's own default (``user@host``) looks the process's uid up in ``/etc/passwd``,
    which fails for the numeric non-root user the image runs as; ``None`` (outside a
    pod) keeps that default.
    """
    return env.get("KUBETUNE_OPERATOR_POD") or None


def run(args: argparse.Namespace) -> int:
    import kopf

    from kubetune import metrics
    from kubetune.controller import handlers, login, settings  # noqa: F401 (registers handlers)
    from kubetune.controller.kube import Kube, new_api_client
    from kubetune.controller.pacing import Pacing
    from kubetune.controller.policy import PolicyWatch
    from kubetune.controller.runtime import Runtime
    from kubetune.render.options import RenderOptions

    # kopf's formatter prefixes each line with the object it is about ([ns/name]).
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(log_format=log_format, log_prefix=True, debug=args.log_level == "debug")
    logging.getLogger().setLevel(args.log_level.upper())
    if args.log_level != "debug":
        logging.getLogger("kopf.objects").addFilter(_QuietWatchHandlers())
    runtime = Runtime(
        kube=Kube(new_api_client()),
        options=RenderOptions(
            trainer_image=args.trainer_image,
            grace_period_seconds=args.grace_period_seconds,
            metrics_port=args.trainer_metrics_port,
            pod_annotations=dict(args.pod_annotation),
        ),
        pacing=Pacing(progress=args.progress_write_interval),
        start_timeout=args.start_timeout or None,
        policy=PolicyWatch(args.policy),
    )
    metrics.serve(args.metrics_port, runtime.states)
    priority = args.peering_priority
    if priority is None:
        priority = random.randint(1, 2**31 - 1)
    logging.getLogger("kubetune.operator").info(
        "starting: %s, peering %s, policy %s",
        "all namespaces" if args.all_namespaces else ", ".join(args.namespaces),
        "off" if args.standalone else f"{args.peering} (priority {priority})",
        args.policy or "off",
    )
    kopf.run(
        # kopf types identities as a NewType of str.
        identity=peering_identity(os.environ),  # type: ignore[arg-type]
        clusterwide=args.all_namespaces,
        namespaces=args.namespaces or (),
        standalone=args.standalone,
        priority=priority,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(
            runtime=runtime,
            workers=args.workers,
            progress_interval=args.progress_interval,
            standalone=args.standalone,
            connections=login.connection_limit(args.namespaces or [], args.all_namespaces),
            sessions=login.Sessions(),
        ),
    )
    return 0
