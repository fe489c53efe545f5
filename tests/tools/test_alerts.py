"""The chart's alerts, evaluated by Prometheus' own rule engine (``promtool test rules``).

The PrometheusRule is rendered by helm, its groups written as a rules file, and each
alert gets fixture series in which it fires (with its labels and annotations as
Alertmanager would receive them) and series in which it must stay silent: the near
misses (a job that just started, a finished job, an invalid spec, a resumed pod still
at its checkpoint's step). A real Prometheus evaluates the same rules against a real
operator and trainer in tests/e2e/test_monitoring.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import by_kind, render

pytestmark = pytest.mark.tools

NAMESPACE = "kubetune-system"
#: The Prometheus Operator names a ServiceMonitor's scrape job after the Service.
OPERATOR = f'job="kubetune-metrics", namespace="{NAMESPACE}", instance="198.18.16.5:9100"'
POD = 'namespace="team-a", finetunejob="llama", job="kubetune-system/kubetune-trainers"'
ALERT_LABELS = {"team": "ml-platform"}
VALUES = {
    "prometheusRule": {
        "enabled": True,
        "alertLabels": ALERT_LABELS,
        "stalledFor": "30m",
        "restarts": 3,
        "restartsWindow": "1h",
    }
}


OPERATOR_DOWN = {
    "summary": "The kubetune operator is down",
    "description": f"No kubetune operator in {NAMESPACE} has answered a metrics scrape for "
    "5m; FineTuneJobs are neither started nor reported.",
}
JOB_FAILED = {
    "summary": "A FineTuneJob failed",
    "description": "FineTuneJobs failed in the last 10 minutes; `kubectl get ftj -A` shows "
    "which, and their Failed condition says why.",
}
STALLED_AT_STEP_10 = {
    "summary": "A FineTuneJob makes no progress",
    "description": "team-a/llama has stayed at step 10 for 30m.",
}


def _job(severity: str = "warning") -> dict[str, str]:
    return {"namespace": "team-a", "finetunejob": "llama", "severity": severity, **ALERT_LABELS}


def _case(
    series: dict[str, str], alert: str, eval_time: str, expected: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": expected}],
    }


#: name -> one promtool test case; the name says whether the alert fires.
CASES: dict[str, dict[str, Any]] = {
    "operator-down-fires-after-5m": _case(
        {f"up{{{OPERATOR}}}": "1x5 0x15"},
        "KubetuneOperatorDown",
        "15m",
        [
            {
                "exp_labels": {"severity": "critical", **ALERT_LABELS},
                "exp_annotations": OPERATOR_DOWN,
            }
        ],
    ),
    "operator-never-scraped-is-down": _case(
        {'up{job="other", namespace="monitoring"}': "1x15"},
        "KubetuneOperatorDown",
        "10m",
        [
            {
                "exp_labels": {"severity": "critical", **ALERT_LABELS},
                "exp_annotations": OPERATOR_DOWN,
            }
        ],
    ),
    "operator-up-is-silent": _case(
        {f"up{{{OPERATOR}}}": "1x20"}, "KubetuneOperatorDown", "20m", []
    ),
    "operator-down-briefly-is-silent": _case(
        {f"up{{{OPERATOR}}}": "1x5 0x3 1x10"}, "KubetuneOperatorDown", "9m", []
    ),
    "reconcile-errors-for-15m-fire": _case(
        {f'kubetune_operator_reconcile_errors_total{{{OPERATOR}, reason="Forbidden"}}': "0+6x30"},
        "KubetuneReconcileErrors",
        "25m",
        [
            {
                "exp_labels": {
                    "namespace": NAMESPACE,
                    "reason": "Forbidden",
                    "severity": "warning",
                    **ALERT_LABELS,
                },
                "exp_annotations": {
                    "summary": "The kubetune operator keeps failing to reconcile",
                    "description": "Reconciliations fail with Forbidden for 15m (100m/s); "
                    "see the operator's log.",
                },
            }
        ],
    ),
    "invalid-specs-are-not-operator-errors": _case(
        {f'kubetune_operator_reconcile_errors_total{{{OPERATOR}, reason="InvalidSpec"}}': "0+6x30"},
        "KubetuneReconcileErrors",
        "25m",
        [],
    ),
    "a-burst-of-conflicts-is-silent": _case(
        {f'kubetune_operator_reconcile_errors_total{{{OPERATOR}, reason="Conflict"}}': "0+1x5 5x9"},
        "KubetuneReconcileErrors",
        "25m",
        [],
    ),
    "job-failed-fires": _case(
        {
            f'kubetune_operator_job_duration_seconds_count{{{OPERATOR}, outcome="Failed"}}': (
                "0x5 1x10"
            )
        },
        "KubetuneJobFailed",
        "8m",
        [
            {
                "exp_labels": {"namespace": NAMESPACE, "severity": "warning", **ALERT_LABELS},
                "exp_annotations": JOB_FAILED,
            }
        ],
    ),
    "job-succeeded-is-silent": _case(
        {
            f'kubetune_operator_job_duration_seconds_count{{{OPERATOR}, outcome="Succeeded"}}': (
                "0x5 1x10"
            ),
            f'kubetune_operator_job_duration_seconds_count{{{OPERATOR}, outcome="Failed"}}': "0x15",
        },
        "KubetuneJobFailed",
        "8m",
        [],
    ),
    "job-failed-long-ago-is-silent": _case(
        {
            f'kubetune_operator_job_duration_seconds_count{{{OPERATOR}, outcome="Failed"}}': (
                "0x5 1x30"
            )
        },
        "KubetuneJobFailed",
        "30m",
        [],
    ),
    "stalled-job-fires": _case(
        {
            f'kubetune_trainer_step{{{POD}, pod="llama-a"}}': "0+1x10 10x40",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-a"}}': "100x50",
        },
        "KubetuneJobStalled",
        "45m",
        [
            {
                "exp_labels": _job(),
                "exp_annotations": STALLED_AT_STEP_10,
            }
        ],
    ),
    "resumed-pod-stuck-at-its-checkpoint-fires": _case(
        {
            f'kubetune_trainer_step{{{POD}, pod="llama-a"}}': "0+1x10 _x40",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-a"}}': "100x10 _x40",
            f'kubetune_trainer_step{{{POD}, pod="llama-b"}}': "_x12 10x40",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-b"}}': "_x12 100x40",
        },
        "KubetuneJobStalled",
        "50m",
        [{"exp_labels": _job(), "exp_annotations": STALLED_AT_STEP_10}],
    ),
    "progressing-job-is-silent": _case(
        {
            f'kubetune_trainer_step{{{POD}, pod="llama-a"}}': "0+1x50",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-a"}}': "100x50",
        },
        "KubetuneJobStalled",
        "45m",
        [],
    ),
    "job-that-just-started-is-silent": _case(
        {
            f'kubetune_trainer_step{{{POD}, pod="llama-a"}}': "_x40 0x10",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-a"}}': "_x40 100x10",
        },
        "KubetuneJobStalled",
        "49m",
        [],
    ),
    "job-at-its-last-step-is-silent": _case(
        {
            f'kubetune_trainer_step{{{POD}, pod="llama-a"}}': "0+10x10 100x40",
            f'kubetune_trainer_total_steps{{{POD}, pod="llama-a"}}': "100x50",
        },
        "KubetuneJobStalled",
        "45m",
        [],
    ),
    "checkpoint-upload-failures-fire": _case(
        {f'kubetune_trainer_checkpoint_upload_failures_total{{{POD}, pod="llama-a"}}': "0x5 1x10"},
        "KubetuneCheckpointUploadFailing",
        "8m",
        [
            {
                "exp_labels": _job(),
                "exp_annotations": {
                    "summary": "A FineTuneJob cannot upload its checkpoints",
                    "description": "team-a/llama failed to upload checkpoints to its output "
                    "store in the last 15 minutes; a preemption now would lose the training "
                    "since its last uploaded checkpoint.",
                },
            }
        ],
    ),
    "no-upload-failures-is-silent": _case(
        {f'kubetune_trainer_checkpoint_upload_failures_total{{{POD}, pod="llama-a"}}': "0x20"},
        "KubetuneCheckpointUploadFailing",
        "15m",
        [],
    ),
    "three-restarts-in-an-hour-fire": _case(
        {
            f'kubetune_trainer_resumes{{{POD}, pod="llama-a"}}': "0x5",
            f'kubetune_trainer_resumes{{{POD}, pod="llama-b"}}': "_x5 1x5",
            f'kubetune_trainer_resumes{{{POD}, pod="llama-c"}}': "_x10 2x5",
            f'kubetune_trainer_resumes{{{POD}, pod="llama-d"}}': "_x15 3x5",
        },
        "KubetuneJobRestarting",
        "18m",
        [
            {
                "exp_labels": _job(),
                "exp_annotations": {
                    "summary": "A FineTuneJob keeps restarting",
                    "description": "team-a/llama resumed from a checkpoint 3 times in 1h "
                    "(preemptions, evictions or crashes).",
                },
            }
        ],
    ),
    "two-restarts-are-silent": _case(
        {
            f'kubetune_trainer_resumes{{{POD}, pod="llama-a"}}': "0x5",
            f'kubetune_trainer_resumes{{{POD}, pod="llama-b"}}': "_x5 1x5",
            f'kubetune_trainer_resumes{{{POD}, pod="llama-c"}}': "_x10 2x10",
        },
        "KubetuneJobRestarting",
        "18m",
        [],
    ),
    "restarts-spread-over-hours-are-silent": _case(
        {f'kubetune_trainer_resumes{{{POD}, pod="llama-a"}}': "0x40 1x40 2x40 3x40"},
        "KubetuneJobRestarting",
        "150m",
        [],
    ),
}


def alert_rules(directory: Path) -> Path:
    """The chart's PrometheusRule groups as a plain rules file (what Prometheus loads)."""
    (rule,) = by_kind(render(VALUES, directory), "PrometheusRule")
    path = directory / "kubetune-alerts.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return alert_rules(tmp_path_factory.mktemp("alerts"))


def test_rules_are_valid_and_every_alert_is_tested(promtool: Path, rules_file: Path) -> None:
    proc = subprocess.run(
        [str(promtool), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = {
        r["alert"] for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]
    }
    assert alerts == {
        "KubetuneOperatorDown",
        "KubetuneReconcileErrors",
        "KubetuneJobFailed",
        "KubetuneJobStalled",
        "KubetuneCheckpointUploadFailing",
        "KubetuneJobRestarting",
    }
    tested = {
        (t["alertname"], bool(t["exp_alerts"]))
        for case in CASES.values()
        for t in case["alert_rule_test"]
    }
    assert tested == {(a, fires) for a in alerts for fires in (True, False)}


@pytest.mark.parametrize("name", list(CASES))
def test_alert(name: str, promtool: Path, rules_file: Path, tmp_path: Path) -> None:
    case = CASES[name]
    tests = tmp_path / "test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": [case]}
        )
    )
    proc = subprocess.run(
        [str(promtool), "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
