"""kopf settings, in the one startup handler.

* Finalizer, handler progress and the last-handled spec live in annotations under
  ``kubetune.io`` (not kopf's own domain), so ``kubectl get -o yaml`` shows whose they
  are and ``status`` holds only the API's fields. There are no deletion handlers:
  children are removed by owner references. kopf's finalizer appears only while a
  daemon runs for the job (progress of a running job, the TTL of a finished one).
* Jobs and pods are watched with a server-side label selector (``kubetune.io/job``):
  the operator never receives, let alone keeps, pods that aren't its own.
* Peering is mandatory unless ``--standalone``: a replica that can't find its peering
  object stops instead of silently acting next to another one (see
  :mod:`kubetune.controller.peering`).
* Watches are renewed every few minutes and a stalled stream is detected quickly;
  API calls time out instead of hanging a worker; kopf's connections are bounded
  (:mod:`kubetune.controller.login`).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from kubetune.render.labels import JOB_LABEL

PREFIX = "kubetune.io"
COMPONENT = "kubetune-operator"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.reporting_component = COMPONENT
    settings.posting.level = logging.INFO
    settings.peering.mandatory = not memo.standalone
    settings.peering.stealth = True
    settings.watching.label_selectors["batch", "v1", "jobs"] = JOB_LABEL
    settings.watching.label_selectors["v1", "pods"] = JOB_LABEL
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.execution.max_workers = memo.workers
    # Event posting is fire-and-forget: a few workers suffice, and each concurrent post
    # would hold a connection (see kubetune.controller.login for the connection bound).
    settings.posting.worker_limit = memo.workers
