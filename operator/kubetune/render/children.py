"""Everything a FineTuneJob owns, rendered in one call (the controller's desired state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetune.render.configmap import digest, render_configmap
from kubetune.render.job import render_job
from kubetune.render.options import RenderOptions
from kubetune.render.pod import render_pod_template
from kubetune.render.service import render_service
from kubetune_contract.api import FineTuneJob
from kubetune_contract.pod import CONFIG_FILE


@dataclass(frozen=True)
class Children:
    """The child manifests of one FineTuneJob, without owner references (the controller
    adds those) and without namespace (children live in the FineTuneJob's namespace)."""

    configmap: dict[str, Any]
    batch_job: dict[str, Any]
    service: dict[str, Any] | None

    def all(self) -> list[dict[str, Any]]:
        """In creation order: the Job last, so its pods find their config and Service."""
        return [self.configmap, *([self.service] if self.service else []), self.batch_job]


def render_children(job: FineTuneJob, options: RenderOptions) -> Children:
    """ConfigMap, Job and (for ``nodes > 1``) headless Service of ``job``."""
    configmap = render_configmap(job)
    template = render_pod_template(job, options)
    config_digest = digest(configmap["data"][CONFIG_FILE])
    return Children(
        configmap=configmap,
        batch_job=render_job(job, template, config_digest),
        service=render_service(job),
    )
