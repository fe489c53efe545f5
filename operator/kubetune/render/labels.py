"""Labels on every child: the Kubernetes recommended set plus ``kubetune.io/job``.

``kubetune.io/job`` is the one label the operator relies on: it watches only objects
carrying it (a server-side label selector), so the operator's memory does not grow with
the number of unrelated pods in the cluster.
"""

from __future__ import annotations

from typing import Literal

JOB_LABEL = "kubetune.io/job"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MANAGED_BY = "kubetune-operator"
APP_NAME = "kubetune"

Component = Literal["trainer", "config", "rendezvous"]


def child_labels(name: str, component: Component) -> dict[str, str]:
    """Labels of a child of the FineTuneJob ``name``."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": APP_NAME,
        JOB_LABEL: name,
    }


def pod_selector(name: str) -> dict[str, str]:
    """Labels that select the trainer pods of the FineTuneJob ``name``."""
    return {JOB_LABEL: name, "app.kubernetes.io/component": "trainer"}
