"""Version skew against the real control plane: a ``kubetune operator`` process facing a
FineTuneJob CRD older than it holds every new job (``Accepted=False`` CRDOutdated, a
Warning event, no batch Job), and starts it as soon as the current CRD is applied,
without a restart.

The "older" CRD is the current one stamped with an older schema version: the operator
decides by the stamp alone, and the schema every other test relies on stays as it is.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from devenv.process import Process, free_port, poll, wait_for
from kubetune.controller.schema import CRD_NAME
from kubetune_contract.api.crd import crd
from kubetune_contract.api.schema_version import (
    CRD_OUTDATED,
    SCHEMA_VERSION,
    SCHEMA_VERSION_ANNOTATION,
)
from tests.cases.manifests import valid_manifest

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


def _apply_crd(cp: ControlPlane, schema_version: int) -> None:
    """Apply the FineTuneJob CRD stamped ``schema_version``; wait until it is served."""
    document = crd()
    document["metadata"]["annotations"][SCHEMA_VERSION_ANNOTATION] = str(schema_version)
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(document))
    cp.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}")


@pytest.fixture
def outdated_crd(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """The FineTuneJob CRD one schema version behind; the current one again afterwards."""
    _apply_crd(control_plane, SCHEMA_VERSION - 1)
    try:
        yield control_plane
    finally:
        _apply_crd(control_plane, SCHEMA_VERSION)


@pytest.fixture
def operator(outdated_crd: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Process]:
    metrics_port = free_port()
    process = Process(
        "operator",
        [
            str(Path(sys.executable).parent / "kubetune"),
            "operator",
            f"--namespace={namespace}",
            "--standalone",
            f"--metrics-port={metrics_port}",
            "--trainer-image=trainer:test",
        ],
        tmp_path / "operator.log",
        env=outdated_crd.env(),
    )
    try:
        wait_for(process, lambda: _answers(metrics_port), what="/metrics answers", timeout=60)
        yield process
    finally:
        process.stop()


def _answers(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return bool(response.status == 200)


def _get(cp: ControlPlane, *args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cp.kubectl("get", *args, "-o", "json").stdout)
    return document


def _accepted(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    status = _get(cp, "finetunejob", name, "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Accepted"), None)


def _batch_jobs(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _get(
        cp, "jobs", "-n", namespace, "-l", f"kubetune.io/job={name}"
    )["items"]
    return items


def test_an_outdated_crd_holds_jobs_until_it_is_upgraded(
    outdated_crd: ControlPlane, operator: Process, namespace: str
) -> None:
    cp = outdated_crd
    job = valid_manifest("skew")
    job["metadata"]["namespace"] = namespace
    cp.kubectl("create", "-f", "-", input=json.dumps(job))

    held = poll(
        lambda: (c := _accepted(cp, namespace, "skew")) and c["reason"] == CRD_OUTDATED and c,
        what="skew is Accepted=False CRDOutdated",
        timeout=TIMEOUT,
    )
    assert held["status"] == "False"
    assert f"has schema version {SCHEMA_VERSION - 1}" in held["message"]
    assert f"this operator needs {SCHEMA_VERSION}" in held["message"]
    assert "helm upgrade" in held["message"]
    events = _get(cp, "events", "-n", namespace, "--field-selector", "involvedObject.name=skew")[
        "items"
    ]
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", CRD_OUTDATED)]
    assert _batch_jobs(cp, namespace, "skew") == []
    assert "no job is started" in operator.log_file.read_text()

    _apply_crd(cp, SCHEMA_VERSION)
    poll(
        lambda: _batch_jobs(cp, namespace, "skew"),
        what="a batch Job for skew once the CRD is current",
        timeout=TIMEOUT,
    )
    poll(
        lambda: (c := _accepted(cp, namespace, "skew")) and c["status"] == "True",
        what="skew is Accepted",
        timeout=TIMEOUT,
    )
