"""Talking to the cluster for the user-facing commands (get, watch, logs, plot).

Every failure a user can meet (no kubeconfig, cluster unreachable, forbidden, job not
found) becomes :class:`ClusterError` with a message that says what to check, so the
commands print one line instead of a traceback.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from kubetune_contract.api import GROUP, PLURAL, VERSION


class ClusterError(Exception):
    """A problem reaching the cluster or finding an object, phrased for the user."""


@dataclass
class Cluster:
    """An API client and the namespace the command works in."""

    api: Any
    namespace: str

    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """--kubeconfig, --context, --namespace (as kubectl spells them)."""
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the context's, else 'default')"
    )


def connect(args: argparse.Namespace) -> Cluster:
    """A client for the selected kubeconfig/context, or ClusterError."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
        api = config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    except (ConfigException, OSError, TypeError) as error:
        raise ClusterError(
            f"no usable kubeconfig ({error}); set KUBECONFIG or --kubeconfig"
        ) from None
    chosen = (
        next((c for c in contexts if c["name"] == args.context), active) if args.context else active
    )
    namespace = args.namespace or (chosen or {}).get("context", {}).get("namespace") or "default"
    return Cluster(api=api, namespace=namespace)


def explain(error: Exception, server: str, what: str) -> ClusterError:
    """A user-facing message for an API error while doing ``what``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(error, ApiException):
        if error.status == 404:
            return ClusterError(f"{what}: not found")
        if error.status in (401, 403):
            return ClusterError(f"{what}: forbidden ({error.reason}); check your RBAC permissions")
        return ClusterError(f"{what}: the API server answered {error.status} {error.reason}")
    if isinstance(error, HTTPError | OSError):
        return ClusterError(f"cannot reach the cluster at {server}: {error}; check KUBECONFIG")
    raise error


def get_job(cluster: Cluster, name: str) -> dict[str, Any]:
    """The FineTuneJob ``name`` as a dict."""
    try:
        job: dict[str, Any] = cluster.custom().get_namespaced_custom_object(
            GROUP, VERSION, cluster.namespace, PLURAL, name
        )
    except Exception as error:
        raise explain(
            error,
            cluster.api.configuration.host,
            f"finetunejob {name!r} in namespace {cluster.namespace!r}",
        ) from None
    return job


def list_jobs(cluster: Cluster, all_namespaces: bool) -> list[dict[str, Any]]:
    """FineTuneJobs in the namespace (or everywhere)."""
    custom = cluster.custom()
    try:
        if all_namespaces:
            listed = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        else:
            listed = custom.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL)
    except Exception as error:
        raise explain(error, cluster.api.configuration.host, "listing finetunejobs") from None
    items: list[dict[str, Any]] = listed.get("items", [])
    return items
