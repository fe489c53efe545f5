"""The headless Service of a multi-node job: stable DNS names for its ranks.

Pods of an Indexed Job get the host name ``<job>-<index>``; with ``subdomain`` set to
this Service, ``<job>-0.<service>`` resolves to rank 0, torchrun's rendezvous address.
``publishNotReadyAddresses`` makes the names resolve before the pods pass readiness,
which the ranks need to meet at all.
"""

from __future__ import annotations

from typing import Any

from kubetune.render import names
from kubetune.render.labels import child_labels, pod_selector
from kubetune.render.pod import MASTER_PORT
from kubetune_contract.api import FineTuneJob


def render_service(job: FineTuneJob) -> dict[str, Any] | None:
    """The Service ``<name>-nodes`` for ``nodes > 1``; ``None`` for single-node jobs."""
    if job.spec.resources.nodes <= 1:
        return None
    name = job.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service_name(name),
            "labels": child_labels(name, "rendezvous"),
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": pod_selector(name),
            "ports": [
                {
                    "name": "rendezvous",
                    "port": MASTER_PORT,
                    "targetPort": MASTER_PORT,
                    "protocol": "TCP",
                }
            ],
        },
    }
