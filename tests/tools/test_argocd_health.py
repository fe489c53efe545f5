"""The Argo CD health check for FineTuneJob, evaluated by Argo CD's own code.

``argocd-health`` (:mod:`tests.argocd_health`) reads the shipped ``argocd-cm.yaml`` with
Argo CD's settings manager and runs the script in Argo CD's gopher-lua sandbox, so a
script that only a full Lua accepts fails here as it would in Argo CD.

The cases are Argo CD's own test format (``charts/kubetune/argocd/health_test.yaml`` +
``testdata/``), so the script can be contributed upstream unchanged. The inputs are
FineTuneJobs written by the real operator (captured from the cluster and end-to-end
tests, see :func:`tests.argocd_health.check`), plus the few an operator never writes
today but Argo CD may still meet: no status yet, an older operator's summary-only status.

Regenerate the ``argocd-cm`` snippet after editing ``health.lua``::

    .venv/bin/python -m tests.tools.test_argocd_health
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_health import (
    ARGOCD_CM,
    ARGOCD_DIR,
    CM_KEY,
    SCRIPT,
    HealthError,
    argocd_cm,
    evaluate,
    evaluate_all,
)

pytestmark = pytest.mark.tools

CASES = yaml.safe_load((ARGOCD_DIR / "health_test.yaml").read_text())["tests"]
#: Inputs written by hand: states the current operator never leaves an object in, and
#: the evaluation gate's verdicts (docs/evaluation.md).
HAND_WRITTEN = {
    "no-status",
    "new-generation",
    "state-only-succeeded",
    "state-only-invalid",
    "evaluation-passed",
    "evaluation-gate-failed",
}


def _input(case: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ARGOCD_DIR / case["inputPath"]).read_text())
    return loaded


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[str, str]]:
    """Argo CD's verdict on every case, from one run of the engine."""
    verdicts = evaluate_all([_input(c) for c in CASES])
    return {c["inputPath"]: v for c, v in zip(CASES, verdicts, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_every_state(case: dict[str, Any], results: dict[str, tuple[str, str]]) -> None:
    expected = (case["healthStatus"]["status"], case["healthStatus"]["message"])
    assert results[case["inputPath"]] == expected


def test_cases_are_the_operators_own_output_for_every_state_and_failure() -> None:
    """Every state the operator writes and every health status, each from a real object."""
    from kubetune_contract.api.status import LIFECYCLE_CONDITION_TYPES, State

    captured = [_input(c) for c in CASES if Path(c["inputPath"]).stem not in HAND_WRITTEN]
    states = {o["status"]["state"] for o in captured}
    assert set(State.__args__) <= states  # type: ignore[attr-defined]
    assert {c["healthStatus"]["status"] for c in CASES} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }
    failed = {
        c["reason"]
        for o in captured
        for c in o["status"]["conditions"]
        if c["type"] == "Failed" and c["status"] == "True"
    }
    assert {"InvalidData", "OOMKilled", "DeadlineExceeded", "BackoffLimitExceeded"} <= failed
    for obj in captured:  # every lifecycle condition, as the operator always writes them
        kinds = {c["type"] for c in obj["status"]["conditions"]}
        assert set(LIFECYCLE_CONDITION_TYPES) <= kinds, obj["metadata"]["name"]


@pytest.mark.parametrize(
    "expression",
    [
        "string.format('%s', 'x')",
        "('x'):upper()",
        "('%d%%'):format(5)",
        "math.floor(1.5)",
        "io.open('/etc/passwd')",
    ],
)
def test_argo_cds_sandbox_refuses_what_only_a_full_lua_allows(expression: str) -> None:
    """The reason for running Argo CD's engine: a full Lua 5.1 (PUC Lua, lupa) runs them all."""
    with pytest.raises(HealthError):
        evaluate({"kind": "FineTuneJob"}, f"return {{status = {expression}}}")


def test_failed_wins_over_every_other_condition() -> None:
    obj = yaml.safe_load((ARGOCD_DIR / "testdata" / "failed-invalid-data.yaml").read_text())
    for condition in obj["status"]["conditions"]:
        if condition["type"] in ("Succeeded", "Suspended"):
            condition.update(status="True", reason="Stale")
    assert evaluate(obj)[0] == "Degraded"


def render_snippet() -> str:
    """The ``argocd-cm`` patch that ships the script (kept byte-identical by a test)."""
    body = "".join(f"    {line}".rstrip() + "\n" for line in SCRIPT.read_text().splitlines())
    return (
        "# Generated from health.lua by tests/tools/test_argocd_health.py; do not edit.\n"
        "# Merge into Argo CD's argocd-cm ConfigMap (docs/argocd.md), e.g. with\n"
        "#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm.yaml\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "data:\n"
        f"  {CM_KEY}: |\n"
        f"{body}"
    )


def test_argocd_cm_snippet_carries_the_tested_script() -> None:
    assert ARGOCD_CM.read_text() == render_snippet(), (
        "charts/kubetune/argocd/argocd-cm.yaml is stale: run "
        "`.venv/bin/python -m tests.tools.test_argocd_health`"
    )
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert data[CM_KEY].strip() == SCRIPT.read_text().strip()
    # The same script handed over directly gives the same verdicts as the shipped patch.
    sample = [_input(c) for c in CASES]
    assert evaluate_all(sample, SCRIPT.read_text()) == evaluate_all(sample)
    assert yaml.safe_load(argocd_cm(SCRIPT.read_text()))["data"][CM_KEY] == SCRIPT.read_text()


if __name__ == "__main__":
    ARGOCD_CM.write_text(render_snippet())
    print(f"wrote {ARGOCD_CM}", file=sys.stderr)
