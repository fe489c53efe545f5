"""Pod and node faults on the real node, and what the FineTuneJob's status says about them.

Each fault is produced the way it happens in a cluster: an image that is on no registry
the node can reach, an image whose container cannot start. The status must name the
cause, and the job must end instead of waiting for ever.
"""

from __future__ import annotations

from typing import Any

import pytest

from devenv.containerd import PAUSE_IMAGE
from tests.e2e.conftest import E2E, START_TIMEOUT

pytestmark = pytest.mark.e2e


def _conditions(ftj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ftj.get("status", {}).get("conditions", [])}


def test_an_image_missing_from_the_node_fails_the_job_naming_it(e2e: E2E) -> None:
    missing = "ghcr.io/kubetune/trainer:not-built-here"
    manifest = e2e.manifest("noimage", maxSteps=4)
    manifest["spec"]["image"] = missing
    e2e.create(manifest)

    def stuck() -> dict[str, Any] | None:
        running = e2e.condition("noimage", "Running")
        return running if running.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

    waiting = e2e.wait(stuck, "the pod waits for its image", timeout=60)
    assert missing in waiting["message"] or "pull" in waiting["message"].lower(), waiting

    ftj = e2e.wait_state("noimage", "Failed", timeout=START_TIMEOUT + 60)
    failed = _conditions(ftj)["Failed"]
    assert failed["reason"] == "ImageUnavailable"
    assert f"image {missing} of pod noimage-" in failed["message"]
    assert "check spec.image" in failed["message"]
    e2e.wait(lambda: not e2e.pods("noimage"), "no pod is left waiting", timeout=60)
    assert e2e.batch_job("noimage") is None, "the Job went with its pod"


def test_a_container_that_cannot_start_fails_with_the_runtimes_reason(e2e: E2E) -> None:
    manifest = e2e.manifest("nostart", maxSteps=4)
    manifest["spec"]["image"] = PAUSE_IMAGE  # there is no `python` in it
    manifest["spec"]["backoffLimit"] = 0
    e2e.create(manifest)

    ftj = e2e.wait_state("nostart", "Failed", timeout=120)
    failed = _conditions(ftj)["Failed"]
    (pod,) = e2e.pods("nostart")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "StartError"
    assert failed["reason"] == "ContainerCannotStart", failed
    assert '"python": executable file not found' in failed["message"]
    assert f"container trainer of pod {pod['metadata']['name']}" in failed["message"]
