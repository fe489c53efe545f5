"""The installed FineTuneJob CRD's schema version, as the operator knows it.

An operator newer than the installed CRD would write status the API server prunes and
read specs without the defaults it relies on, failing on missing fields far from the
cause. So the CRD's ``kubetune.io/schema-version`` stamp
(:mod:`kubetune_contract.api.schema_version`) is read from a watch (the handlers in
:mod:`kubetune.controller.handlers`): at start, before any job is judged, and on every
change of the CRD, so that an upgrade takes effect without restarting the operator.
While the CRD is older than :data:`SCHEMA_VERSION`, the operator creates no children
and says why in each new job's status (``Accepted=False``, :data:`CRD_OUTDATED`).
A newer CRD is fine: it only has fields this operator leaves alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubetune_contract.api import GROUP, PLURAL
from kubetune_contract.api.schema_version import SCHEMA_VERSION, installed_schema_version

#: The CRD whose stamp is checked.
CRD_NAME = f"{PLURAL}.{GROUP}"

log = logging.getLogger("kubetune.operator")


def outdated_message(installed: int) -> str:
    """Why nothing is done: both versions, and the commands that upgrade the CRD."""
    return (
        f"the installed CRD {CRD_NAME} has schema version {installed}, this operator needs "
        f"{SCHEMA_VERSION}: upgrade the CRD (helm upgrade with the chart of this operator's "
        "version, crds.enabled=true; or kubectl apply --server-side -f crds/finetunejob.yaml "
        "of that version); jobs start once it is upgraded"
    )


@dataclass
class SchemaWatch:
    """The schema version of the installed FineTuneJob CRD (``None``: not seen yet)."""

    installed: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, crd: Mapping[str, Any]) -> None:
        """Record a watched version of the CRD; log when it turns outdated or current."""
        version = installed_schema_version(dict(crd))
        with self._lock:
            before, self.installed = self.installed, version
        if version < SCHEMA_VERSION and before != version:
            log.warning("no job is started: %s", outdated_message(version))
        elif version >= SCHEMA_VERSION and before is not None and before < SCHEMA_VERSION:
            log.info("CRD %s upgraded to schema version %d: jobs start again", CRD_NAME, version)

    def outdated(self) -> str:
        """Why the installed CRD is too old for this operator; empty when it is not."""
        with self._lock:
            installed = self.installed
        if installed is None or installed >= SCHEMA_VERSION:
            return ""
        return outdated_message(installed)
