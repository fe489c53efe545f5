"""Search everything a run wrote for the credentials it was given: logs, events, statuses,
ConfigMaps, termination messages and the manifests in the store.

Why: "secrets never appear in logs, events, status or ConfigMaps" holds only if nothing
ever copies one there, and the places are many (the operator's and the trainer's logs,
events, the status derived from a termination message, the config the operator renders,
``manifest.json``). The end-to-end and fault tests give their jobs real Secrets (the S3
keys, a Hub token) and, before their namespace goes, collect every one of those texts and
search them for the Secrets' values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client

from devenv.s3 import S3Server
from kubetune_contract.api import GROUP, PLURAL, VERSION


def hits(texts: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """``where: which secret`` for every text that contains a secret's value."""
    values = [s for s in secrets if s]
    return [
        f"{where}: secret #{index}"
        for where, text in texts.items()
        for index, value in enumerate(values)
        if value in text
    ]


def _pod_texts(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for pod in core.list_namespaced_pod(namespace).items:
        name = pod.metadata.name
        for status in pod.status.container_statuses or []:
            for state_name in ("state", "last_state"):
                terminated = getattr(status, state_name).terminated
                if terminated is not None and terminated.message:
                    texts[f"pod/{name}/{status.name} termination message"] = terminated.message
            for previous in (False, True):
                try:
                    log = core.read_namespaced_pod_log(
                        name, namespace, container=status.name, previous=previous
                    )
                except client.ApiException:
                    continue  # no such (previous) container
                texts[f"pod/{name}/{status.name} log{' (previous)' if previous else ''}"] = log
    return texts


def namespace_texts(api: Any, namespace: str) -> dict[str, str]:
    """Every pod log and termination message, Event, ConfigMap and FineTuneJob status of
    ``namespace``, by where it was found."""
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    texts = _pod_texts(core, namespace)
    for event in core.list_namespaced_event(namespace).items:
        texts[f"event/{event.metadata.name}"] = f"{event.reason} {event.message}"
    for config_map in core.list_namespaced_config_map(namespace).items:
        texts[f"configmap/{config_map.metadata.name}"] = json.dumps(config_map.data or {})
    listed: Any = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    for ftj in listed["items"]:
        texts[f"finetunejob/{ftj['metadata']['name']} status"] = json.dumps(ftj.get("status"))
    return texts


def manifest_texts(s3: S3Server, bucket: str, prefix: str) -> dict[str, str]:
    """Every ``manifest.json`` below ``s3://bucket/prefix``."""
    s3_client = s3.client()
    texts: dict[str, str] = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith("manifest.json"):
                body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                texts[f"s3://{bucket}/{item['Key']}"] = body.decode(errors="replace")
    return texts
