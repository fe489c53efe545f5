"""The evaluation in the job's status: EvaluationPassed, status.result.evaluation, events,
and the termination summary that carries them (pure functions, no cluster)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetune.controller.status import transition
from kubetune.controller.summary import evaluation_of
from kubetune_contract.api.status import FineTuneJobStatus
from kubetune_contract.termination import LIMIT_BYTES, Summary
from tests.unit.test_status_derive import (
    SUMMARY_OK,
    conditions,
    job,
    message,
    observe,
    pod,
    spec,
)

EVALUATED = spec({"dataset": {"validationSplit": "0.1"}, "evaluation": {}})
GATED = spec(
    {
        "dataset": {"validationSplit": "0.1"},
        "evaluation": {"gate": [{"metric": "exactMatch", "minDelta": "0.05"}]},
    }
)
SCORES = {
    "exactMatch": {"base": 0.21, "tuned": 0.64},
    "rougeL": {"base": 0.4, "tuned": 0.7},
}


def finished(evaluation: dict[str, Any], the_spec: Any = GATED) -> FineTuneJobStatus:
    summary = {**SUMMARY_OK, "evaluation": evaluation}
    done = pod(
        phase="Succeeded",
        terminated={"exitCode": 0, "reason": "Completed", "message": json.dumps(summary)},
    )
    return observe(job(conditions=[{"type": "Complete"}]), [done], the_spec=the_spec)


def block(passed: bool | None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "prompts": 48,
        "metrics": SCORES,
        "headline": "exact match 0.21 → 0.64",
        "reportUri": "s3://models/demo/evaluation.md",
        **extra,
    }
    if passed is not None:
        found["gate"] = {
            "passed": passed,
            "failures": [] if passed else ["exactMatch: tuned 0.64 is below base 0.21 + 0.5"],
        }
    return found


def test_jobs_without_evaluation_have_no_evaluation_condition() -> None:
    running = observe(job(active=1), [pod()])
    assert "EvaluationPassed" not in conditions(running)


def test_evaluation_is_pending_until_the_trainer_ends() -> None:
    running = observe(job(active=1), [pod()], the_spec=GATED)
    assert conditions(running)["EvaluationPassed"] == ("Unknown", "Pending")
    assert [c.type for c in running.conditions][-1] == "EvaluationPassed"
    queued = observe(None, the_spec=GATED)
    assert conditions(queued)["EvaluationPassed"] == ("Unknown", "Pending")


def test_a_passed_gate_reports_numbers_in_result_condition_and_event() -> None:
    status = finished(block(passed=True))
    assert status.state == "Succeeded"
    assert conditions(status)["EvaluationPassed"] == ("True", "GatePassed")
    assert message(status, "EvaluationPassed") == "exact match 0.21 → 0.64; gate passed"
    assert status.result is not None and status.result.evaluation is not None
    evaluation = status.result.evaluation
    assert evaluation.prompts == 48
    assert evaluation.headline == "exact match 0.21 → 0.64"
    assert evaluation.reportUri == "s3://models/demo/evaluation.md"
    exact = evaluation.metrics["exactMatch"]
    assert (exact.base, exact.tuned) == (0.21, 0.64)
    assert exact.delta == pytest.approx(0.43)
    assert "evaluation: exact match 0.21 → 0.64; gate passed" in message(status, "Succeeded")
    event = transition(FineTuneJobStatus(), status)
    assert event is not None and event.type == "Normal" and event.reason == "Succeeded"
    assert "exact match 0.21 → 0.64" in event.message


def test_a_failed_gate_keeps_the_job_succeeded_and_warns() -> None:
    status = finished(block(passed=False))
    assert status.state == "Succeeded"
    assert conditions(status)["Succeeded"] == ("True", "Succeeded")
    assert conditions(status)["EvaluationPassed"] == ("False", "GateFailed")
    assert "exactMatch: tuned 0.64 is below base 0.21 + 0.5" in message(status, "EvaluationPassed")
    assert status.result is not None and status.result.adapterUri == "s3://models/demo/adapter"
    event = transition(FineTuneJobStatus(), status)
    assert event is not None and event.type == "Warning"
    assert "gate failed: exactMatch" in event.message


def test_without_a_gate_the_evaluation_passes_once_it_ran() -> None:
    status = finished(block(passed=None), the_spec=EVALUATED)
    assert conditions(status)["EvaluationPassed"] == ("True", "Evaluated")


def test_a_failed_evaluation_has_its_own_reason_and_no_numbers() -> None:
    status = finished({"error": "OutOfMemoryError: CUDA out of memory"})
    assert status.state == "Succeeded"
    assert conditions(status)["EvaluationPassed"] == ("False", "EvaluationFailed")
    assert "CUDA out of memory" in message(status, "EvaluationPassed")
    assert status.result is not None and status.result.evaluation is None
    assert status.result.adapterUri == "s3://models/demo/adapter"


def test_a_trainer_that_reported_no_evaluation_is_unknown() -> None:
    status = finished({})
    assert conditions(status)["EvaluationPassed"] == ("Unknown", "NotReported")


def test_failed_training_is_not_evaluated() -> None:
    summary = {"outcome": "Failed", "reason": "InvalidData", "message": "row 3", "exitCode": 3}
    failed = pod(
        phase="Failed",
        terminated={"exitCode": 3, "reason": "Error", "message": json.dumps(summary)},
    )
    failure = {"type": "Failed", "reason": "PodFailurePolicy", "message": "exit code 3"}
    status = observe(job(conditions=[failure]), [failed], the_spec=GATED)
    assert conditions(status)["EvaluationPassed"] == ("False", "NotEvaluated")


@pytest.mark.parametrize(
    "evaluation",
    [
        {"metrics": {"exactMatch": {"base": "x", "tuned": 1}}},
        {"metrics": {"noSuchMetric": {"base": 0.1, "tuned": 0.2}}},
        {"metrics": [1, 2]},
        {"metrics": {"rougeL": {"base": 0.1, "tuned": float("nan")}}},
        {"prompts": -4, "metrics": SCORES},
        {"prompts": "many", "metrics": SCORES},
    ],
)
def test_malformed_evaluation_blocks_give_no_result_and_never_raise(
    evaluation: dict[str, Any],
) -> None:
    summary = Summary("Succeeded", "Succeeded", "done", 0, evaluation=evaluation)
    assert evaluation_of(summary) is None


def test_a_gate_that_is_not_a_mapping_is_read_as_no_gate() -> None:
    status = finished(block(passed=None, gate="yes"))
    assert conditions(status)["EvaluationPassed"] == ("True", "Evaluated")


def test_the_summary_stays_below_the_termination_limit_with_an_evaluation() -> None:
    long_uri = "s3://bucket/" + "x" * 1000
    summary = Summary(
        "Succeeded",
        "Succeeded",
        "trained 90 steps; " + "note " * 400,
        0,
        metrics={f"metric{i}": float(i) for i in range(40)},
        result={"adapterUri": long_uri, "manifestUri": long_uri + "/manifest.json"},
        evaluation={
            **block(passed=False),
            "metrics": {m: {"base": 0.123456789, "tuned": 0.987654321} for m in SCORES},
            "reportUri": long_uri + "/evaluation.md",
        },
    )
    text = summary.to_json()
    assert len(text.encode()) < LIMIT_BYTES
    data = json.loads(text)
    assert data["evaluation"]["headline"] == "exact match 0.21 → 0.64"
    assert data["evaluation"]["gate"]["passed"] is False
