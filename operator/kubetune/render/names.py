"""Deterministic names of a FineTuneJob's children.

Why deterministic: the controller creates children with these names and treats "already
exists" as "look at what is there", so an operator restart at any point can neither
duplicate a child nor lose track of one. ``MAX_NAME_LENGTH`` in the API keeps every
name below a DNS label (63 characters) including Indexed Job pod host names
(``<job>-<index>``).
"""

from __future__ import annotations

CONFIG_SUFFIX = "-config"
SERVICE_SUFFIX = "-nodes"


def job_name(name: str) -> str:
    """The batch/v1 Job: the FineTuneJob's own name, so ``kubectl get job NAME`` finds it."""
    return name


def configmap_name(name: str) -> str:
    """The ConfigMap holding the trainer config."""
    return name + CONFIG_SUFFIX


def service_name(name: str) -> str:
    """The headless Service through which multi-node ranks reach rank 0."""
    return name + SERVICE_SUFFIX


def master_address(name: str) -> str:
    """DNS name of rank 0 of a multi-node job: ``<job>-0.<service>`` (pod host name)."""
    return f"{job_name(name)}-0.{service_name(name)}"
