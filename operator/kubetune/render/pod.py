"""The training pod template: container, environment, volumes, security and placement.

The template follows the restricted Pod Security Standard (non-root, no privilege
escalation, no capabilities, RuntimeDefault seccomp) with a read-only root filesystem;
everything the trainer writes goes to emptyDirs (``/tmp``, the model/hub caches, the
work dir) or to a memory-backed ``/dev/shm`` (data loader workers and NCCL need more
than the container runtime's 64 MiB default). Credentials reach the pod only as
references to Secrets, mounted as files (``kubetune_trainer.credentials`` reads them):
never as values, and never as environment variables, which every child process inherits.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from kubetune.estimate import host
from kubetune.render import names
from kubetune.render.labels import child_labels
from kubetune.render.options import RenderOptions
from kubetune_contract import pod as contract
from kubetune_contract.api import FineTuneJob, environment
from kubetune_contract.api.references import (
    CREDENTIALS_FIELD,
    secret_fields,
    storage_uris,
    values,
)

CONTAINER_NAME = "trainer"
CACHE_DIR = "/cache"
#: torchrun's rendezvous port on rank 0 (its default).
MASTER_PORT = 29500
#: The annotation the Job controller sets on each pod of an Indexed Job.
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def _command(job: FineTuneJob) -> list[str]:
    """One process per GPU under torchrun when there is more than one; else plain Python.

    Multi-process pods run ``kubetune_trainer.launch``, which runs torchrun (reading its
    ``--nnodes`` etc. from the ``PET_*`` environment, see :func:`_distributed_env`) and
    exits with the trainer's own exit code: bare torchrun exits 1 on SIGTERM and on any
    worker failure, which would defeat the ``podFailurePolicy`` rules keyed on those codes.
    ``--standalone`` gives a single node a local rendezvous.
    """
    resources = job.spec.resources
    if resources.nodes > 1:
        return ["python", "-m", contract.LAUNCHER_MODULE]
    if resources.gpus > 1:
        return ["python", "-m", contract.LAUNCHER_MODULE, "--standalone"]
    return ["python", "-m", contract.TRAINER_MODULE]


def _distributed_env(job: FineTuneJob) -> list[dict[str, Any]]:
    resources = job.spec.resources
    if resources.nodes == 1 and resources.gpus <= 1:
        return []
    env: list[dict[str, Any]] = [
        {"name": "PET_NNODES", "value": str(resources.nodes)},
        {"name": "PET_NPROC_PER_NODE", "value": str(max(resources.gpus, 1))},
    ]
    if resources.nodes > 1:
        index_path = f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
        env += [
            {"name": "PET_NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": index_path}}},
            {"name": "PET_MASTER_ADDR", "value": names.master_address(job.metadata.name)},
            {"name": "PET_MASTER_PORT", "value": str(MASTER_PORT)},
        ]
    return env


def credential_secrets(job: FineTuneJob) -> list[str]:
    """Names of the Secrets the trainer reads credentials from (every
    ``credentialsSecret`` of the spec, found as the policy finds them), in spec order."""
    names = [
        name
        for path in secret_fields()
        if path.steps[-1].name == CREDENTIALS_FIELD
        for _, name in values(job.spec, path)
    ]
    return list(dict.fromkeys(names))


def credentials_dir(secret: str) -> str:
    """Where the Secret ``secret`` is mounted (one file per key)."""
    return f"{contract.CREDENTIALS_ROOT}/{secret}"


def pvc_claims(job: FineTuneJob) -> dict[str, bool]:
    """Claims named by the spec's ``pvc://claim/path`` storage URIs -> writable?

    Only claims the trainer writes to (the output's) are mounted read-write: a typo in a
    dataset URI must not let the trainer write into someone's data volume. Only fields
    typed as storage URIs count, so free text such as a principle is never a volume.
    """
    claims: dict[str, bool] = {}
    for stored in storage_uris(job.spec):
        uri = urlparse(stored.uri)
        if uri.scheme == "pvc":
            claims[uri.netloc] = claims.get(uri.netloc, False) or stored.mark.writes
    return claims


def _env(job: FineTuneJob, options: RenderOptions) -> list[dict[str, Any]]:
    fixed = [
        {"name": contract.CONFIG_ENV, "value": contract.CONFIG_PATH},
        {"name": contract.METRICS_PORT_ENV, "value": str(options.metrics_port)},
        {"name": contract.TERMINATION_PATH_ENV, "value": contract.TERMINATION_PATH},
        {"name": contract.WORK_DIR_ENV, "value": contract.WORK_DIR},
        {"name": contract.PVC_ROOT_ENV, "value": contract.PVC_ROOT},
        {"name": environment.HOME, "value": contract.WORK_DIR},
        {"name": environment.XDG_CACHE_HOME, "value": CACHE_DIR},
        {"name": environment.HF_HOME, "value": f"{CACHE_DIR}/huggingface"},
        {"name": environment.TRITON_CACHE_DIR, "value": f"{CACHE_DIR}/triton"},
    ]
    mounted = [
        {"name": f"{contract.CREDENTIALS_ENV_PREFIX}{index}", "value": credentials_dir(secret)}
        for index, secret in enumerate(credential_secrets(job))
    ]
    user = [variable.to_wire() for variable in job.spec.env]
    return fixed + mounted + _distributed_env(job) + _threads_env(job) + user


def _threads_env(job: FineTuneJob) -> list[dict[str, Any]]:
    """``OMP_NUM_THREADS`` from the CPU request (:func:`host.threads_per_process` says
    why), unless the author set it in ``spec.env``."""
    if any(variable.name == environment.OMP_NUM_THREADS for variable in job.spec.env):
        return []
    threads = host.threads_per_process(job.spec)
    return [{"name": environment.OMP_NUM_THREADS, "value": str(threads)}]


def _resources(job: FineTuneJob) -> dict[str, dict[str, str]]:
    """Requests as asked (CPU and memory derived from the job when unset, see
    :mod:`kubetune.estimate.host`); limits only where exceeding the request hurts others.

    GPUs must have equal requests and limits. Memory is limited (to ``resources.memory``,
    or to the derived request plus ``/dev/shm``, whose memory counts against it) so that
    a leak OOM-kills this pod instead of putting the node under pressure. CPU stays
    unlimited: throttling a data loader slows the GPUs down for nothing.
    """
    spec = job.spec.resources
    requests: dict[str, str] = {
        "cpu": spec.cpu or host.cpu_request(job.spec),
        "memory": spec.memory or host.memory_request(job.spec),
    }
    limits: dict[str, str] = {"memory": spec.memory or host.memory_limit(job.spec)}
    if spec.ephemeralStorage:
        requests["ephemeral-storage"] = spec.ephemeralStorage
    if spec.gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(spec.gpus)
    return {"requests": requests, "limits": limits}


def _volumes(job: FineTuneJob) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts): config file, scratch emptyDirs, /dev/shm, credential
    Secrets (read-only files, readable by the trainer's group only), pvc:// claims."""
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {
                "name": names.configmap_name(job.metadata.name),
                "items": [{"key": contract.CONFIG_FILE, "path": contract.CONFIG_FILE}],
            },
        },
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {}},
        {"name": "work", "emptyDir": {}},
        {
            "name": "dshm",
            "emptyDir": {"medium": "Memory", "sizeLimit": job.spec.resources.sharedMemory},
        },
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": contract.CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": CACHE_DIR},
        {"name": "work", "mountPath": contract.WORK_DIR},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    for index, secret in enumerate(credential_secrets(job)):
        volume = f"credentials-{index}"
        volumes.append({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o440}})
        mounts.append({"name": volume, "mountPath": credentials_dir(secret), "readOnly": True})
    for index, (claim, writable) in enumerate(sorted(pvc_claims(job).items())):
        volume = f"pvc-{index}"
        volumes.append(
            {
                "name": volume,
                "persistentVolumeClaim": {"claimName": claim, "readOnly": not writable},
            }
        )
        mounts.append(
            {"name": volume, "mountPath": f"{contract.PVC_ROOT}/{claim}", "readOnly": not writable}
        )
    return volumes, mounts


def _ports(job: FineTuneJob, options: RenderOptions) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = [
        {"name": "metrics", "containerPort": options.metrics_port, "protocol": "TCP"}
    ]
    if job.spec.resources.nodes > 1:
        ports.append({"name": "rendezvous", "containerPort": MASTER_PORT, "protocol": "TCP"})
    return ports


def _container(job: FineTuneJob, options: RenderOptions) -> dict[str, Any]:
    _, mounts = _volumes(job)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": job.spec.image or options.trainer_image,
        "command": _command(job),
        "env": _env(job, options),
        "ports": _ports(job, options),
        "resources": _resources(job),
        "volumeMounts": mounts,
        "terminationMessagePath": contract.TERMINATION_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return container


def _placement(job: FineTuneJob) -> dict[str, Any]:
    """nodeSelector, tolerations, affinity and priority from the spec plus GPU defaults."""
    spec = job.spec
    scheduling = spec.scheduling
    node_selector = dict(scheduling.nodeSelector) if scheduling else {}
    if spec.resources.gpuType:
        node_selector[GPU_PRODUCT_LABEL] = spec.resources.gpuType
    tolerations = [t.to_wire() for t in scheduling.tolerations] if scheduling else []
    if spec.resources.gpus:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    placement: dict[str, Any] = {}
    if node_selector:
        placement["nodeSelector"] = node_selector
    if tolerations:
        placement["tolerations"] = tolerations
    if scheduling and scheduling.affinity:
        placement["affinity"] = scheduling.affinity
    if scheduling and scheduling.priorityClassName:
        placement["priorityClassName"] = scheduling.priorityClassName
    return placement


def render_pod_template(job: FineTuneJob, options: RenderOptions) -> dict[str, Any]:
    """The Job's ``spec.template`` for ``job``."""
    name = job.metadata.name
    volumes, _ = _volumes(job)
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": (
            job.spec.terminationGracePeriodSeconds or options.grace_period_seconds
        ),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": contract.RUN_AS_USER,
            "runAsGroup": contract.RUN_AS_USER,
            "fsGroup": contract.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(job, options)],
        "volumes": volumes,
        **_placement(job),
    }
    if job.spec.serviceAccountName:
        pod_spec["serviceAccountName"] = job.spec.serviceAccountName
    if job.spec.resources.nodes > 1:
        pod_spec["subdomain"] = names.service_name(name)
    return {
        "metadata": {
            "labels": child_labels(name, "trainer"),
            "annotations": dict(options.pod_annotations),
        },
        "spec": pod_spec,
    }
