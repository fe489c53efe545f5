"""The few Kubernetes API calls the controller makes, on plain dicts.

Responses are read as JSON (``_preload_content=False``) instead of the client's
generated models: the controller works with manifests as dicts everywhere, and
skipping model deserialisation keeps the operator's CPU and memory low.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetune import __version__
from kubetune.api import GROUP, PLURAL, VERSION

MERGE_PATCH = "application/merge-patch+json"
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_RETRY_DELAYS = (0.5, 1.0, 2.0)


#: Who posts the operator's events (``kubectl describe`` shows it as "From").
COMPONENT = "kubetune-operator"
USER_AGENT = f"{COMPONENT}/{__version__}"
#: Characters of an event message at most (longer ones are cut in the middle).
EVENT_MESSAGE_LIMIT = 1024


def new_api_client() -> client.ApiClient:
    """A client for the in-cluster service account, else the local kubeconfig.

    It says who it is (:data:`USER_AGENT`), so audit logs and API server metrics tell
    the operator's requests apart from kubectl's.
    """
    try:
        config.load_incluster_config()
        api = client.ApiClient()
    except config.ConfigException:
        api = config.new_client_from_config()
    api.user_agent = USER_AGENT
    return api


def _json(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    response = call(*args, _preload_content=False, **kwargs)
    data = response.data
    return dict(json.loads(data)) if data else {}


@dataclass
class Kube:
    """Typed entry points for ConfigMaps, Services, Jobs, events and FineTuneJob status."""

    api: client.ApiClient

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``manifest``; ``None`` when an object of that name already exists."""
        kind = manifest["kind"]
        creators: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.create_namespaced_config_map,
            "Service": self.core.create_namespaced_service,
            "Job": self.batch.create_namespaced_job,
        }
        try:
            return _json(creators[kind], namespace, manifest)
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        _json(
            self.core.patch_namespaced_config_map, name, namespace, patch, _content_type=MERGE_PATCH
        )

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(self.batch.read_namespaced_job, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return _json(
            self.batch.patch_namespaced_job, name, namespace, patch, _content_type=MERGE_PATCH
        )

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Delete the Job ``name`` if it is still the one with ``uid`` (pods go with it)."""
        body = client.V1DeleteOptions(
            propagation_policy="Background", preconditions=client.V1Preconditions(uid=uid)
        )
        try:
            self.batch.delete_namespaced_job(name, namespace, body=body)
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> str:
        """Merge-patch ``status`` of the FineTuneJob (nulls remove fields) if it is still
        at ``resource_version``; return the version the write made.

        The precondition makes a write derived from an outdated view fail (HTTP 409)
        instead of replacing a newer status (a paused replica's, or one derived before
        a spec edit). Retried a few times on throttling and server errors: a status
        write is often triggered by the last event a job will ever have (its Job
        completing), so a write lost to a brief API server hiccup would stay lost.
        """
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        delays = iter(_RETRY_DELAYS)
        while True:
            try:
                written = _json(
                    self.custom.patch_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    body,
                    _content_type=MERGE_PATCH,
                )
                return str(written["metadata"]["resourceVersion"])
            except ApiException as error:
                delay = next(delays, None)
                if delay is None or error.status not in _TRANSIENT_STATUS:
                    raise
                time.sleep(delay)

    def post_event(self, involved: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about ``involved`` (an object reference)."""
        if len(message) > EVENT_MESSAGE_LIMIT:
            half = EVENT_MESSAGE_LIMIT // 2 - 2
            message = f"{message[:half]}...{message[-half:]}"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = involved["namespace"]
        event = {
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": dict(involved),
            "type": type,
            "reason": reason,
            "message": message,
            "source": {"component": COMPONENT, "host": socket.gethostname()},
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        _json(self.core.create_namespaced_event, namespace, event)

    def delete_finetunejob(self, namespace: str, name: str, uid: str) -> None:
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=body
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise
