"""Experiment tracking (``spec.tracking``): each backend's settings, from the spec only.

transformers' own integrations do the reporting (``report_to``, set in
:mod:`kubetune_trainer.methods.common`); this module checks that the image carries the
backend's client and hands it what the spec says. Credentials never come from the spec:
the operator mounts ``tracking.credentialsSecret`` as files (:mod:`kubetune_trainer.credentials`),
and since these clients read their keys from the environment only (``WANDB_API_KEY``;
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or ``MLFLOW_TRACKING_TOKEN``), the
keys they need are copied into this process's environment, never into the pod spec.

* ``tensorboard``: TensorBoard's writer writes local files only, so event files go to
  ``tracking.uri`` when it is local (``file://``, ``pvc://``, a path), else under the work
  directory; an object-store ``tracking.uri`` (``s3://``, ``gs://``, ``az://``) receives
  them when training stops, finished or interrupted (:func:`upload_logs`).
* ``wandb``: ``WANDB_PROJECT`` from ``tracking.project``; W&B's own settings
  (``WANDB_MODE=offline``, ``WANDB_DIR``, ``WANDB_BASE_URL``) come from ``spec.env``.
* ``mlflow``: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME``; the image carries
  ``mlflow-skinny``, the client (it installs the ``mlflow`` module), not the server.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from kubetune_trainer import credentials, storage
from kubetune_trainer.errors import InvalidConfigError

if TYPE_CHECKING:
    from kubetune_contract.api.spec import FineTuneJobSpec

log = logging.getLogger(__name__)

#: The module each ``tracking.backend`` needs in the image.
MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
#: Credentials each client reads from the environment only (no file, no option).
CREDENTIALS = {
    "wandb": ("WANDB_API_KEY",),
    "mlflow": ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
}
#: Where TensorBoard's event files go under the work directory.
TENSORBOARD_DIR = "tensorboard"


def check_installed(spec: FineTuneJobSpec) -> None:
    """Refuse, before any work, a backend whose client this image lacks."""
    tracking = spec.tracking
    if tracking is None:
        return
    module = MODULES[tracking.backend]
    if importlib.util.find_spec(module) is None:
        raise InvalidConfigError(
            f"tracking.backend {tracking.backend} needs the {module} package, which this "
            "trainer image lacks"
        )


def configure(spec: FineTuneJobSpec, work: Path) -> Path | None:
    """Point the backend's client at the spec's settings (environment variables it reads
    when the Trainer starts); return the local TensorBoard folder to upload at the end,
    if any. Variables the user set in ``spec.env`` win."""
    tracking = spec.tracking
    if tracking is None:
        return None
    for name in CREDENTIALS.get(tracking.backend, ()):
        if name not in os.environ and (found := credentials.value(name)) is not None:
            os.environ[name] = found
    if tracking.backend == "tensorboard":
        uri = tracking.uri
        remote = uri is not None and storage.is_remote(uri)
        logs = work / TENSORBOARD_DIR if uri is None or remote else storage.local_path(uri)
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(logs))
        return logs if remote else None
    if tracking.backend == "wandb" and tracking.project:
        os.environ.setdefault("WANDB_PROJECT", tracking.project)
    elif tracking.backend == "mlflow":
        if tracking.project:
            os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", tracking.project)
        if tracking.uri:
            os.environ.setdefault("MLFLOW_TRACKING_URI", tracking.uri)
    return None


def upload_logs(spec: FineTuneJobSpec, logs: Path | None) -> None:
    """Copy the TensorBoard event files to an object-store ``tracking.uri`` (rank 0)."""
    tracking = spec.tracking
    if logs is None or tracking is None or tracking.uri is None or not logs.is_dir():
        return
    uploaded = storage.upload_dir(logs, tracking.uri)
    log.info("tensorboard: %d file(s) uploaded to %s", len(uploaded), tracking.uri)
