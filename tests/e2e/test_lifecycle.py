"""A FineTuneJob's whole life with every part real: control plane, operator process,
trainer (run by the pod runner as a local process), S3.

Each test applies a small version of ``examples/quickstart-cluster.yaml`` (the tiny
built-in model, LoRA, batch 4, a few dozen steps) and watches what a user would: the
FineTuneJob's status, the pods, and the output bucket. A step takes ~0.05 s on an idle
CPU and ten times that on a busy one, so step counts are chosen for the fast case: the
jobs interrupted mid-training get 120 steps and are interrupted from step 2 on, which
leaves seconds of training to interrupt even when nothing else runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.conftest import BUCKET, E2E

pytestmark = pytest.mark.e2e


def _conditions(ftj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ftj.get("status", {}).get("conditions", [])}


def _progress_step(e2e: E2E, name: str) -> int:
    return int((e2e.ftj(name).get("status", {}).get("progress") or {}).get("step") or 0)


def _running_pod(e2e: E2E, name: str, min_step: int) -> dict[str, Any]:
    """The running trainer pod, once status.progress has reached ``min_step``."""
    e2e.wait(lambda: _progress_step(e2e, name) >= min_step, f"{name} reached step {min_step}")
    running = [p for p in e2e.pods(name) if p["status"].get("phase") == "Running"]
    assert len(running) == 1, [p["metadata"]["name"] for p in e2e.pods(name)]
    return running[0]


_RESUMED = re.compile(r"resuming from (\S+/checkpoints/step-(\d+)) \(step (\d+)\)")


def test_apply_trains_to_success_with_progress_and_the_adapter_in_s3(e2e: E2E) -> None:
    e2e.create(e2e.manifest("sft", maxSteps=120))
    seen: list[int] = []

    def finished() -> dict[str, Any] | None:
        status = e2e.ftj("sft").get("status", {})
        step = (status.get("progress") or {}).get("step")
        if status.get("state") == "Running" and step and (not seen or step != seen[-1]):
            seen.append(step)
        return status if status.get("state") in ("Succeeded", "Failed") else None

    status = e2e.wait(finished, "sft finishes", timeout=240)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["state"] == "Succeeded", conditions
    assert len(seen) >= 2, f"progress observed while running: {seen}"
    assert seen == sorted(seen) and seen[0] < seen[-1], seen
    assert status["progress"]["step"] == status["progress"]["totalSteps"] == 120
    assert status["restarts"] == 0

    output = e2e.output_uri("sft")
    result = status["result"]
    assert result["adapterUri"] == output
    assert result["manifestUri"] == f"{output}/manifest.json"
    keys = set(e2e.s3_keys(output))
    assert {"adapter_model.safetensors", "adapter_config.json", "manifest.json"} <= keys
    manifest = e2e.s3_json(result["manifestUri"])
    assert manifest, "manifest.json is a non-empty JSON document"
    assert result["metrics"]["evalLoss"] < result["metrics"]["initialEvalLoss"]

    pods = e2e.pods("sft")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert conditions["Succeeded"]["status"] == "True"


def test_preempted_pod_is_replaced_and_resumes_from_the_s3_checkpoint(e2e: E2E) -> None:
    manifest = e2e.manifest("preempt", maxSteps=120)
    manifest["spec"]["checkpoints"] = {"intervalSteps": 1000}  # only the SIGTERM checkpoint
    e2e.create(manifest)
    first = _running_pod(e2e, "preempt", min_step=2)
    e2e.core.delete_namespaced_pod(first["metadata"]["name"], e2e.namespace)

    status = e2e.wait_state("preempt", "Succeeded", "Failed", timeout=300)["status"]
    assert status["state"] == "Succeeded", _conditions({"status": status})
    assert status["progress"]["step"] == 120

    first_log = e2e.pod_log(first)
    assert "SIGTERM" in first_log, first_log[-2000:]
    pods = e2e.pods("preempt")
    assert first["metadata"]["uid"] not in {p["metadata"]["uid"] for p in pods}
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    resumed = _RESUMED.search(e2e.pod_log(pods[0]))
    assert resumed, "the replacement pod resumed from a checkpoint"
    assert resumed.group(1).startswith(f"{e2e.output_uri('preempt')}/checkpoints/")
    assert 2 <= int(resumed.group(3)) < 120
    assert status["restarts"] == 1


def test_bad_dataset_fails_at_once_with_the_trainers_reason(e2e: E2E) -> None:
    bad = f"e2e/{e2e.namespace}/bad/train.jsonl"
    rows = b'{"prompt": "no messages here"}\n' * 20
    e2e.s3.client().put_object(Bucket=BUCKET, Key=bad, Body=rows)
    manifest = e2e.manifest("bad", maxSteps=10)
    manifest["spec"]["dataset"]["train"]["uri"] = f"s3://{BUCKET}/{bad}"
    manifest["spec"]["backoffLimit"] = 3  # retries would be allowed: none may happen
    e2e.create(manifest)

    ftj = e2e.wait_state("bad", "Failed", "Succeeded", timeout=180)
    failed = _conditions(ftj)["Failed"]
    assert ftj["status"]["state"] == "Failed"
    pods = e2e.pods("bad")
    assert len(pods) == 1, "no retries"
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    summary = json.loads(terminated["message"])
    assert summary["reason"].startswith("Invalid")
    assert summary["message"] in failed["message"]
    assert failed["status"] == "True"
    assert ftj["status"]["restarts"] == 0


def test_suspend_checkpoints_and_stops_then_resume_continues(e2e: E2E) -> None:
    manifest = e2e.manifest("pause", maxSteps=120)
    manifest["spec"]["checkpoints"] = {"intervalSteps": 1000}
    e2e.create(manifest)
    first = _running_pod(e2e, "pause", min_step=2)
    e2e.patch_spec("pause", {"suspend": True})

    def stopped() -> dict[str, Any] | None:
        ftj = e2e.ftj("pause")
        done = ftj.get("status", {}).get("state") == "Suspended" and not e2e.pods("pause")
        return ftj if done else None

    suspended = e2e.wait(stopped, "pause is Suspended with no pods", timeout=120)
    assert _conditions(suspended)["Suspended"]["status"] == "True"
    checkpoints = [k for k in e2e.s3_keys(e2e.output_uri("pause")) if k.startswith("checkpoints/")]
    assert checkpoints, "a checkpoint was saved before the pod stopped"
    assert "SIGTERM" in e2e.pod_log(first)

    e2e.patch_spec("pause", {"suspend": False})
    status = e2e.wait_state("pause", "Succeeded", "Failed", timeout=300)["status"]
    assert status["state"] == "Succeeded", _conditions({"status": status})
    assert status["progress"]["step"] == 120
    assert status["restarts"] == 0, "a suspend is not a restart"
    pods = e2e.pods("pause")
    resumed = _RESUMED.search(e2e.pod_log(pods[-1]))
    assert resumed, "the resumed pod continued from the checkpoint"
    assert 2 <= int(resumed.group(3)) < 120
