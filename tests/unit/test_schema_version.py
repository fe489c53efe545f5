"""Version skew: the CRDs carry the schema version, and the operator holds every new
job (no children, ``Accepted=False`` CRDOutdated, a Warning event) while the installed
FineTuneJob CRD is older than it, and starts them once it is not."""

from __future__ import annotations

from typing import Any

import pytest

from kubetune.controller.schema import CRD_NAME, SchemaWatch
from kubetune.controller.status import transition
from kubetune_contract.api.crd import CRDS
from kubetune_contract.api.schema_version import (
    CRD_OUTDATED,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ANNOTATION,
    installed_schema_version,
)
from kubetune_contract.api.status import FineTuneJobStatus
from tests.unit.test_status_sync import ACTIVE_JOB, RUNNING, recording_runtime, snapshot_at


def stamped(version: str | None) -> dict[str, Any]:
    """A CRD manifest as watched, with ``version`` as its stamp (``None``: no stamp)."""
    annotations = {} if version is None else {SCHEMA_VERSION_ANNOTATION: version}
    return {"metadata": {"name": CRD_NAME, "annotations": annotations}}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_generated_crd_carries_the_models_schema_version(kind: str) -> None:
    crd = CRDS[kind][0]()
    assert installed_schema_version(crd) == SCHEMA_VERSION


@pytest.mark.parametrize(("stamp", "version"), [(None, 0), ("3", 3), ("three", 0)])
def test_a_crd_without_a_readable_stamp_predates_it(stamp: str | None, version: int) -> None:
    assert installed_schema_version(stamped(stamp)) == version
    assert installed_schema_version({"metadata": {}}) == 0


def test_only_an_older_crd_is_outdated_and_the_message_says_what_to_do() -> None:
    watch = SchemaWatch()
    assert watch.outdated() == "", "not seen yet: nothing to hold on"
    watch.observe(stamped(str(SCHEMA_VERSION - 1)))
    message = watch.outdated()
    assert f"{CRD_NAME} has schema version {SCHEMA_VERSION - 1}" in message
    assert f"this operator needs {SCHEMA_VERSION}" in message
    assert "helm upgrade" in message and "kubectl apply --server-side" in message
    for current in (SCHEMA_VERSION, SCHEMA_VERSION + 1):
        watch.observe(stamped(str(current)))
        assert watch.outdated() == ""


def test_an_outdated_crd_holds_a_new_job_with_a_warning_until_it_is_upgraded() -> None:
    runtime, kube = recording_runtime()
    runtime.schema.observe(stamped(None))
    snapshot = snapshot_at("1")
    assert runtime.held(snapshot) == (CRD_OUTDATED, (runtime.schema.outdated(),))
    status, _ = runtime.publish(snapshot, None, [])
    accepted = next(c for c in status.conditions if c.type == "Accepted")
    assert (status.state, accepted.status, accepted.reason) == ("Invalid", "False", CRD_OUTDATED)
    assert "schema version 0" in accepted.message
    assert kube.events == [CRD_OUTDATED]
    change = transition(FineTuneJobStatus(), status)
    assert change is not None and change.type == "Warning"

    runtime.schema.observe(stamped(str(SCHEMA_VERSION)))
    assert runtime.held(snapshot_at("2")) == ("PolicyViolation", ()), "no policy: may start"


def test_an_outdated_crd_leaves_started_and_finished_jobs_as_they_are() -> None:
    runtime, _ = recording_runtime()
    runtime.schema.observe(stamped("0"))
    status, _ = runtime.publish(snapshot_at("1"), ACTIVE_JOB, RUNNING)
    assert status.state == "Running"
    finished = snapshot_at("5", {"state": "Succeeded"})
    assert runtime.outdated(finished) == ""
