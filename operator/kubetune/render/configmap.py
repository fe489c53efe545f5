"""The ConfigMap holding the trainer config, mounted into the pod as a file.

The config carries the fully defaulted spec, which names Secrets but never holds
credentials, so a ConfigMap (not a Secret) is the right home for it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kubetune.render import names
from kubetune.render.labels import child_labels
from kubetune.render.trainer_config import render_trainer_config, trainer_config_json
from kubetune_contract.api import FineTuneJob
from kubetune_contract.pod import CONFIG_FILE


def digest(text: str) -> str:
    """``sha256:<hex>`` of ``text``: how children record what they were rendered from."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def render_configmap(job: FineTuneJob) -> dict[str, Any]:
    """The ConfigMap ``<name>-config`` with ``config.json``."""
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.configmap_name(name),
            "labels": child_labels(name, "config"),
        },
        "data": {CONFIG_FILE: trainer_config_json(render_trainer_config(job))},
    }
