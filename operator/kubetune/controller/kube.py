"""The few Kubernetes API calls the controller makes, on plain dicts.

Requests go straight to the client's REST layer with JSON bodies and responses: the
generated API methods validate their arguments with pydantic and walk every body to
serialise it, which cost the operator more CPU than the HTTP requests themselves
(a py-spy profile of ``bench/operator_scale.py``), and the controller works with
manifests as dicts everywhere anyway. The client still does the TLS, the connection
pool and the credentials (including a refreshed service-account token).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetune import __version__
from kubetune_contract.api import GROUP, PLURAL, VERSION

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


#: Seconds to connect, and to wait for a response: a worker never hangs on one call.
REQUEST_TIMEOUT = (10.0, 60.0)
_PATHS = {
    "ConfigMap": "/api/v1/namespaces/{namespace}/configmaps",
    "Service": "/api/v1/namespaces/{namespace}/services",
    "Job": "/apis/batch/v1/namespaces/{namespace}/jobs",
    "Event": "/api/v1/namespaces/{namespace}/events",
    "FineTuneJob": f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}",
    "Workload": "/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads",
}
#: The label Kueue puts on the Workload it creates for a Job: the Job's uid.
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"


def _path(kind: str, namespace: str, name: str | None = None, subresource: str = "") -> str:
    path = _PATHS[kind].format(namespace=quote(namespace))
    if name is not None:
        path += "/" + quote(name)
    return path + (f"/{subresource}" if subresource else "")


@dataclass
class Kube:
    """Typed entry points for ConfigMaps, Services, Jobs, events and FineTuneJob status."""

    api: client.ApiClient

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the decoded JSON response, or :class:`ApiException`."""
        headers = {
            **self.api.default_headers,
            "Accept": "application/json",
            "Content-Type": content_type,
        }
        self.api.update_params_for_auth(headers, [], ["BearerToken"], path, method, body)
        response = self.api.rest_client.request(
            method,
            self.api.configuration.host + path,
            headers=headers,
            body=body,
            _request_timeout=REQUEST_TIMEOUT,
        )
        data = response.read()
        if not 200 <= response.status <= 299:
            text = data.decode("utf-8", "replace") if data else None
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return dict(json.loads(data)) if data else {}

    def create(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create ``manifest``; ``None`` when an object of that name already exists."""
        try:
            return self._request("POST", _path(manifest["kind"], namespace), manifest)
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    def patch_configmap(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._request("PATCH", _path("ConfigMap", namespace, name), patch, MERGE_PATCH)

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", _path("Job", namespace, name))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._request("PATCH", _path("Job", namespace, name), patch, MERGE_PATCH)

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Delete the Job ``name`` if it is still the one with ``uid`` (pods go with it)."""
        options = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        try:
            self._request("DELETE", _path("Job", namespace, name), options)
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
                path = _path("FineTuneJob", namespace, name, "status")
                written = self._request("PATCH", path, body, MERGE_PATCH)
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
        self._request("POST", _path("Event", namespace), event)

    def workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        """The Kueue Workloads of the Job ``job_uid``; none where Kueue (v1beta2, Kueue
        >= 0.15) is not installed or the operator may not read them."""
        selector = quote(f"{KUEUE_JOB_UID_LABEL}={job_uid}")
        try:
            found = self._request("GET", f"{_path('Workload', namespace)}?labelSelector={selector}")
        except ApiException as error:
            if error.status in (403, 404):
                return []
            raise
        return list(found.get("items") or [])

    def delete_finetunejob(self, namespace: str, name: str, uid: str) -> None:
        options = {"preconditions": {"uid": uid}}
        try:
            self._request("DELETE", _path("FineTuneJob", namespace, name), options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise
