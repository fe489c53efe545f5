"""kopf settings, in the one startup handler.

* kopf keeps nothing in the objects: the operator has only index and event handlers
  (see :mod:`kubetune.controller.handlers`), so there is no diff-base, no handler
  progress and no finalizer to write. kopf would still build a diff-base for every
  watch event (a deep copy of the object, a sixth of the operator's CPU in a burst):
  :class:`NoDiffBase` makes it empty. The finalizer name is still set: versions that
  ran a kopf daemon per job left ``kubetune.io/finalizer`` on running jobs, and kopf
  removes a finalizer of its name that no handler needs when it sees the job.
* Events are posted by the controller itself (:mod:`kubetune.controller.runtime`), so
  kopf's posting is off.
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

from collections.abc import Iterable
from typing import Any

import kopf

from kubetune.render.labels import JOB_LABEL

PREFIX = "kubetune.io"


class NoDiffBase(kopf.DiffBaseStorage):
    """An empty diff-base, never stored: nothing here compares an object with the last
    handled one (passes are level-based)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.enabled = False
    settings.peering.mandatory = not memo.standalone
    settings.peering.stealth = True
    settings.watching.label_selectors["batch", "v1", "jobs"] = JOB_LABEL
    settings.watching.label_selectors["v1", "pods"] = JOB_LABEL
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
