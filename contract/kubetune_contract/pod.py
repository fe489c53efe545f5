"""What the operator's pod gives the trainer: environment variables, paths and ports.

The operator renders these into the trainer container (:mod:`kubetune.render.pod`); the
trainer reads them (:mod:`kubetune_trainer`). The trainer image's ``ENV`` lines
(``trainer-image/Dockerfile``) set the same defaults for a container started by hand.
"""

from __future__ import annotations

#: The rendered run config (:class:`kubetune_contract.api.trainer_config.TrainerConfig`)
#: as JSON: the variable naming it, and where the operator mounts its ConfigMap.
CONFIG_ENV = "KUBETUNE_CONFIG"
CONFIG_DIR = "/etc/kubetune"
CONFIG_FILE = "config.json"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"

#: Scratch space for downloads, checkpoints and the result (an emptyDir in the pod).
WORK_DIR_ENV = "KUBETUNE_WORK_DIR"
WORK_DIR = "/work"

#: Where ``pvc://<claim>/<path>`` URIs are mounted: ``<root>/<claim>``.
PVC_ROOT_ENV = "KUBETUNE_PVC_ROOT"
PVC_ROOT = "/mnt/kubetune/pvc"

#: ``<prefix><n>`` holds the mount path of the n-th credential Secret the spec names (in
#: the spec's order); each Secret is mounted at ``<root>/<secret name>``.
CREDENTIALS_ENV_PREFIX = "KUBETUNE_CREDENTIALS_"
CREDENTIALS_ROOT = "/var/run/secrets/kubetune"

#: The Prometheus endpoint of local rank 0 (:mod:`kubetune_contract.metrics`); ``0`` off.
METRICS_PORT_ENV = "KUBETUNE_METRICS_PORT"
METRICS_PORT = 9090

#: The termination message (:mod:`kubetune_contract.termination`).
TERMINATION_PATH_ENV = "KUBETUNE_TERMINATION_PATH"
TERMINATION_PATH = "/dev/termination-log"

#: What the container runs: the trainer, or its torchrun launcher for several processes.
TRAINER_MODULE = "kubetune_trainer"
LAUNCHER_MODULE = "kubetune_trainer.launch"

#: The trainer image's user and group: numeric, so that ``runAsNonRoot`` can verify it,
#: and high (low UIDs such as 1000 belong to real accounts on many hosts, so a container
#: escape or a hostPath mount would act as one of them).
RUN_AS_USER = 65532
