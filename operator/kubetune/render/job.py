"""The batch/v1 Job that runs the trainer pods.

Failure handling is the Job controller's, configured by ``podFailurePolicy``:

* the trainer's "invalid config, model or data" exit code fails the Job at once
  (``FailJob``): retrying can't fix a typo in a dataset URI;
* a pod stopped by a disruption (preemption, eviction, node drain: the
  ``DisruptionTarget`` condition) or a trainer that exited with its "interrupted after
  a checkpoint" code is replaced without counting against ``backoffLimit`` (``Ignore``);
* every other failure counts, up to ``backoffLimit``.

A Job's pod template is immutable once created, except while the Job is suspended
(and even then only scheduling fields). The Job therefore records the digests of what
it was rendered from: its pod template (:data:`TEMPLATE_HASH_ANNOTATION`) and the
trainer config in its ConfigMap (:data:`CONFIG_DIGEST_ANNOTATION`). The controller
compares them with a fresh render: a changed config is written to the ConfigMap only
while no pod runs (pods read it when they start, so a retried pod never mixes two
configs), and a changed template re-creates a suspended Job when it resumes (see
:mod:`kubetune.controller.children`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubetune.render import names
from kubetune.render.labels import KUEUE_QUEUE_LABEL, child_labels
from kubetune.render.pod import CONTAINER_NAME
from kubetune_contract import exit_codes
from kubetune_contract.api import FineTuneJob

TEMPLATE_HASH_ANNOTATION = "kubetune.io/template-hash"
CONFIG_DIGEST_ANNOTATION = "kubetune.io/config-digest"


def template_hash(template: dict[str, Any]) -> str:
    """``sha256:<hex>`` of a pod template's canonical JSON."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def queue_name(job: FineTuneJob) -> str | None:
    """The Kueue LocalQueue the job is submitted to, if any."""
    return job.spec.scheduling.queueName if job.spec.scheduling else None


def pod_failure_policy() -> dict[str, Any]:
    """Rules mapping the trainer's exit codes and pod disruptions to Job actions."""
    return {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted(exit_codes.NON_RETRIABLE),
                },
            },
            {
                "action": "Ignore",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted(exit_codes.DISRUPTION),
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    }


def desired_suspend(job: FineTuneJob) -> bool:
    """``spec.suspend`` of a new Job: suspended when the user asks or Kueue must admit it.

    For a queued job this is only the initial value: from then on Kueue owns the
    field, and the controller never writes it.
    """
    return job.spec.suspend or queue_name(job) is not None


def render_job(job: FineTuneJob, template: dict[str, Any], config_digest: str) -> dict[str, Any]:
    """The Job ``<name>`` running ``template`` (from :func:`render_pod_template`) with
    the trainer config whose digest is ``config_digest``."""
    name = job.metadata.name
    spec = job.spec
    labels = child_labels(name, "trainer")
    queue = queue_name(job)
    if queue:
        labels[KUEUE_QUEUE_LABEL] = queue
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoffLimit,
        "suspend": desired_suspend(job),
        "podFailurePolicy": pod_failure_policy(),
        "template": template,
    }
    if spec.resources.nodes > 1:
        job_spec |= {
            "completionMode": "Indexed",
            "completions": spec.resources.nodes,
            "parallelism": spec.resources.nodes,
        }
    if spec.activeDeadlineSeconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.activeDeadlineSeconds
    if spec.ttlSecondsAfterFinished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttlSecondsAfterFinished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": names.job_name(name),
            "labels": labels,
            "annotations": {
                TEMPLATE_HASH_ANNOTATION: template_hash(template),
                CONFIG_DIGEST_ANNOTATION: config_digest,
            },
        },
        "spec": job_spec,
    }
