"""Create-or-patch of a FineTuneJob's children: idempotent, restart-safe.

Children have deterministic names, so "create" either makes the child or learns that
it exists (HTTP 409); nothing is ever created twice, whatever point an operator restart
interrupted. What an existing Job may be changed into follows from Kubernetes' rules
(see :mod:`kubetune.render.job`):

* the mutable fields are synced (``suspend`` unless Kueue owns it,
  ``activeDeadlineSeconds``, ``backoffLimit``, ``ttlSecondsAfterFinished``);
* a changed trainer config is written to the ConfigMap only while the Job is suspended
  with no pods (pods read it when they start: a retried pod must not mix two configs),
  so a spec edited while suspended applies on resume;
* a changed pod template (image, env, resources, scheduling) can't be patched: a
  suspended Job without pods that is asked to run is deleted and re-created with it
  (checkpoints are in the output store, so training resumes); a running Job keeps its
  template until the next suspend/resume;
* a finished Job is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetune.controller.kube import Kube
from kubetune.controller.views import SYNCED_FIELDS, JobView
from kubetune.render.children import Children
from kubetune.render.job import CONFIG_DIGEST_ANNOTATION as CONFIG_DIGEST
from kubetune.render.job import TEMPLATE_HASH_ANNOTATION as TEMPLATE_HASH
from kubetune.render.job import desired_suspend, queue_name
from kubetune_contract.api import FineTuneJob


class JobReplaced(RuntimeError):
    """The old Job is deleted but its name is not free yet: try again shortly."""


@dataclass
class Outcome:
    """What :func:`ensure_children` did, for log lines, events and metrics."""

    batch_job: dict[str, Any] | None = None
    actions: list[str] = field(default_factory=list)
    created_job: bool = False


def _job_patch(
    desired: dict[str, Any], have: Mapping[str, Any], finetunejob: FineTuneJob
) -> dict[str, Any]:
    """Changes of the synced fields; ``suspend`` only when Kueue doesn't own it."""
    want = desired["spec"]
    patch = {
        name: want.get(name)
        for name in SYNCED_FIELDS
        if name != "suspend" and want.get(name) != have.get(name)
    }
    if queue_name(finetunejob) is None and bool(have.get("suspend")) != desired_suspend(
        finetunejob
    ):
        patch["suspend"] = desired_suspend(finetunejob)
    return patch


def up_to_date(view: JobView, children: Children, finetunejob: FineTuneJob) -> bool:
    """Whether the Job as last seen needs nothing: finished, or rendered from the same
    template and config with the same settings. Spares a restarted operator (which
    resumes every job) all API calls for jobs that didn't change."""
    if view.success or view.failure:
        return True
    wanted = children.batch_job["metadata"]["annotations"]
    return (
        view.template_hash == wanted[TEMPLATE_HASH]
        and view.config_digest == wanted[CONFIG_DIGEST]
        and not _job_patch(children.batch_job, view.settings, finetunejob)
    )


def _update_config(kube: Kube, namespace: str, children: Children) -> None:
    configmap = children.configmap
    kube.patch_configmap(namespace, configmap["metadata"]["name"], {"data": configmap["data"]})


def ensure_children(
    kube: Kube,
    finetunejob: FineTuneJob,
    children: Children,
    adopt: Callable[[dict[str, Any]], None],
) -> Outcome:
    """Make the cluster hold ``children`` of ``finetunejob`` (see the module docstring).

    ``adopt`` sets owner references (and namespace) on a manifest before it is sent.
    Raises :class:`JobReplaced` while a replaced Job's name is still taken.
    """
    namespace = finetunejob.metadata.namespace or "default"
    outcome = Outcome()
    for manifest in children.all():
        adopt(manifest)
    existed = set()
    for manifest in children.all()[:-1]:
        if kube.create(namespace, manifest) is not None:
            outcome.actions.append(f"created {manifest['kind']} {manifest['metadata']['name']}")
        else:
            existed.add(manifest["kind"])
    desired = children.batch_job
    name = desired["metadata"]["name"]
    created = kube.create(namespace, desired)
    if created is not None:
        if "ConfigMap" in existed:  # left by an earlier Job: make it match this one
            _update_config(kube, namespace, children)
        outcome.actions.append(f"created Job {name}")
        outcome.batch_job, outcome.created_job = created, True
        return outcome
    current = kube.read_job(namespace, name)
    if current is None:  # deleted between our create and read: the next pass creates it
        raise JobReplaced(f"Job {name} vanished while being read")
    view = JobView.from_manifest(current)
    wanted = desired["metadata"]["annotations"]
    idle = view.suspended and view.active == 0
    if view.success or view.failure:
        outcome.batch_job = current
    elif view.template_hash != wanted[TEMPLATE_HASH] and idle and not desired["spec"]["suspend"]:
        _update_config(kube, namespace, children)
        kube.delete_job(namespace, name, view.uid)
        outcome.actions.append(f"re-creating Job {name} with the spec edited while suspended")
        created = kube.create(namespace, desired)
        if created is None:
            raise JobReplaced(f"Job {name} is being deleted; re-creating it shortly")
        outcome.batch_job, outcome.created_job = created, True
    else:
        patch: dict[str, Any] = {}
        if view.config_digest != wanted[CONFIG_DIGEST] and idle:
            _update_config(kube, namespace, children)
            patch["metadata"] = {"annotations": {CONFIG_DIGEST: wanted[CONFIG_DIGEST]}}
            outcome.actions.append(f"updated ConfigMap {children.configmap['metadata']['name']}")
        if spec_patch := _job_patch(desired, current.get("spec") or {}, finetunejob):
            patch["spec"] = spec_patch
            outcome.actions.append(f"patched Job {name}: {', '.join(sorted(spec_patch))}")
        outcome.batch_job = kube.patch_job(namespace, name, patch) if patch else current
        if view.template_hash != wanted[TEMPLATE_HASH]:
            outcome.actions.append(
                f"Job {name} keeps its pod template until it is suspended and resumed"
            )
    return outcome
