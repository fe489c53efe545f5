"""A FineTuneJob's whole life with every part real: control plane, the operator installed
by its chart and running from its image, trainer pods running the trainer image in
containers on a real kubelet node, S3.

Each test applies a small version of ``examples/quickstart-cluster.yaml`` (the tiny
built-in model, LoRA, batch 4, a few dozen steps) and watches what a user would: the
FineTuneJob's status, the pods, the container logs (``kubectl logs``) and the output
bucket. A step takes ~0.03-0.07 s on an idle CPU and ten times that on a busy one, so
step counts are chosen for the fast case: a job interrupted mid-training gets
``INTERRUPTIBLE_STEPS`` and is interrupted from step 2 on, which leaves seconds of
training to interrupt even when nothing else runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import argocd_health
from tests.cases.jobs import INTERRUPTIBLE_STEPS
from tests.e2e.conftest import BUCKET, E2E

pytestmark = pytest.mark.e2e


def _conditions(ftj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ftj.get("status", {}).get("conditions", [])}


def _running_pod(e2e: E2E, name: str, min_step: int) -> dict[str, Any]:
    """The running trainer pod, once status.progress has reached ``min_step``."""
    e2e.wait(lambda: e2e.progress_step(name) >= min_step, f"{name} reached step {min_step}")
    running = [p for p in e2e.pods(name) if p["status"].get("phase") == "Running"]
    assert len(running) == 1, [p["metadata"]["name"] for p in e2e.pods(name)]
    return running[0]


_RESUMED = re.compile(r"resuming from (\S+/checkpoints/step-(\d+)) \(step (\d+)\)")


def test_apply_trains_to_success_with_progress_and_the_adapter_in_s3(e2e: E2E) -> None:
    e2e.create(e2e.manifest("sft", maxSteps=120))
    seen: list[int] = []
    etas: list[int] = []

    def finished() -> dict[str, Any] | None:
        status = e2e.ftj("sft").get("status", {})
        progress = status.get("progress") or {}
        step = progress.get("step")
        if status.get("state") == "Running" and step and (not seen or step != seen[-1]):
            seen.append(step)
            if progress.get("etaSeconds") is not None:
                etas.append(progress["etaSeconds"])
        return status if status.get("state") in ("Succeeded", "Failed") else None

    status = e2e.wait(finished, "sft finishes", timeout=300)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["state"] == "Succeeded", conditions
    assert len(seen) >= 2, f"progress observed while running: {seen}"
    assert seen == sorted(seen) and seen[0] < seen[-1], seen
    assert etas, "an ETA was reported while running"
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

    (pod,) = e2e.pods("sft")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "kubetune-node-0"
    (container,) = pod["status"]["containerStatuses"]
    assert container["imageID"], "the container ran from an image in containerd"
    assert "INFO kubetune_trainer: Succeeded" in e2e.pod_log(pod)
    assert conditions["Succeeded"]["status"] == "True"
    argocd_health.check(
        e2e.ftj("sft"),
        "succeeded-trainer",
        "Healthy",
        rf"Succeeded: training finished at step 120; adapter at {output}",
    )


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
    argocd_health.check(ftj, "failed-invalid-data-trainer", "Degraded", r"InvalidData: .+")


def test_a_memory_limit_too_small_fails_naming_the_oom_kill_and_the_field(e2e: E2E) -> None:
    manifest = e2e.manifest("oom", maxSteps=10)
    manifest["spec"]["resources"] |= {"memory": "200Mi"}
    manifest["spec"]["backoffLimit"] = 0
    e2e.create(manifest)

    ftj = e2e.wait_state("oom", "Failed", "Succeeded", timeout=180)
    failed = _conditions(ftj)["Failed"]
    assert (ftj["status"]["state"], failed["reason"]) == ("Failed", "OOMKilled"), failed
    (pod,) = e2e.pods("oom")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert f"container trainer of pod {pod['metadata']['name']} was OOM-killed" in failed["message"]
    assert "spec.resources.memory (200Mi)" in failed["message"]
    argocd_health.check(
        ftj,
        "failed-oom-killed",
        "Degraded",
        r"OOMKilled: container trainer of pod \S+ was OOM-killed \(exit 137\): .+",
    )


def test_suspend_checkpoints_and_stops_then_resume_continues(e2e: E2E) -> None:
    manifest = e2e.manifest("pause", maxSteps=INTERRUPTIBLE_STEPS)
    manifest["spec"]["checkpoints"] = {"intervalSteps": 1000}
    e2e.create(manifest)
    first = _running_pod(e2e, "pause", min_step=2)
    e2e.patch_spec("pause", {"suspend": True})
    first_log = e2e.wait(
        lambda: (log := e2e.pod_log(first)) and "SIGTERM" in log and log,
        "the suspended pod's trainer got SIGTERM",
    )

    def stopped() -> dict[str, Any] | None:
        ftj = e2e.ftj("pause")
        done = ftj.get("status", {}).get("state") == "Suspended" and not e2e.pods("pause")
        return ftj if done else None

    suspended = e2e.wait(stopped, "pause is Suspended with no pods", timeout=120)
    assert _conditions(suspended)["Suspended"]["status"] == "True"
    checkpoints = [k for k in e2e.s3_keys(e2e.output_uri("pause")) if k.startswith("checkpoints/")]
    assert checkpoints, f"a checkpoint was saved before the pod stopped:\n{first_log[-2000:]}"

    e2e.patch_spec("pause", {"suspend": False})
    status = e2e.wait_state("pause", "Succeeded", "Failed", timeout=600)["status"]
    assert status["state"] == "Succeeded", _conditions({"status": status})
    assert status["progress"]["step"] == INTERRUPTIBLE_STEPS
    assert status["restarts"] == 0, "a suspend is not a restart"
    pods = e2e.pods("pause")
    resumed = _RESUMED.search(e2e.pod_log(pods[-1]))
    assert resumed, "the resumed pod continued from the checkpoint"
    assert 2 <= int(resumed.group(3)) < INTERRUPTIBLE_STEPS


def test_two_nodes_train_together_over_the_pod_network(e2e: E2E) -> None:
    manifest = e2e.manifest("pair", maxSteps=12)
    # One GPU per node, as multi-node training requires: the real node advertises GPUs,
    # so both pods schedule there, and the trainer runs on the CPU (gloo).
    manifest["spec"]["resources"] |= {"nodes": 2, "gpus": 1}
    manifest["spec"]["checkpoints"] = {"intervalSteps": 6}
    e2e.create(manifest)

    status = e2e.wait_state("pair", "Succeeded", "Failed", timeout=300)["status"]
    assert status["state"] == "Succeeded", _conditions({"status": status})
    pods = e2e.pods("pair")
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
    )
    assert indexes == ["0", "1"]
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert len({p["status"]["podIP"] for p in pods}) == 2, "two pods, two addresses"
    by_index = {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods
    }
    # Rank 1 found rank 0 by the headless Service's DNS name, across the pod network.
    assert "distributed: rank 0 of 2, rendezvous pair-0.pair-nodes:29500" in e2e.pod_log(
        by_index["0"]
    )
    assert "distributed: rank 1 of 2, rendezvous pair-0.pair-nodes:29500" in e2e.pod_log(
        by_index["1"]
    )
    keys = set(e2e.s3_keys(e2e.output_uri("pair")))
    top_level = {k for k in keys if "/" not in k}
    assert {"adapter_model.safetensors", "manifest.json"} <= top_level, "one adapter, by rank 0"
    # The checkpoint is whole: both ranks' RNG state, gathered to rank 0 before its upload.
    assert {"checkpoints/step-6/rng_state_0.pth", "checkpoints/step-6/rng_state_1.pth"} <= keys
