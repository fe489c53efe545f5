"""The Argo CD health check for FineTuneJob, run under Lua 5.1 as Argo CD runs it.

Why Lua 5.1 and a sandbox: Argo CD evaluates health scripts with gopher-lua (Lua 5.1
semantics) and opens only the base, table, package and a "safe os" library — no
``string`` and no ``math``. A script that calls ``string.format`` passes a test under a
full Lua but fails in a real Argo CD. So the script runs here in ``lupa.lua51`` with an
environment holding exactly those libraries.

The cases are Argo CD's own test format (``charts/kubetune/argocd/health_test.yaml`` +
``testdata/``), so the script can be contributed upstream unchanged.

Regenerate the ``argocd-cm`` snippet after editing ``health.lua``::

    .venv/bin/python -m tests.unit.test_argocd_health
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.argocd_health import SCRIPT, evaluate

ARGOCD_DIR = SCRIPT.parent
SNIPPET = ARGOCD_DIR / "argocd-cm.yaml"
CASES = yaml.safe_load((ARGOCD_DIR / "health_test.yaml").read_text())["tests"]
CM_KEY = "resource.customizations.health.kubetune.io_FineTuneJob"


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_every_state(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD_DIR / case["inputPath"]).read_text())
    assert evaluate(obj) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


def test_cases_cover_every_state_and_health_status() -> None:
    """Every status.state the API defines, and every health status the issue names."""
    from kubetune.api.status import State

    states = {
        yaml.safe_load((ARGOCD_DIR / c["inputPath"]).read_text()).get("status", {}).get("state")
        for c in CASES
    }
    assert set(State.__args__) <= states  # type: ignore[attr-defined]
    assert {c["healthStatus"]["status"] for c in CASES} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }


def test_script_uses_no_library_argo_cd_does_not_open() -> None:
    """The sandbox itself must be strict, or the test above proves nothing."""
    import lupa.lua51 as lua51

    for library in ("string.format('%s', 'x')", "math.floor(1.5)", "io.open('/etc/passwd')"):
        with pytest.raises(lua51.LuaError):
            evaluate({}, f"return {{status = {library}}}")


def test_failed_wins_over_every_other_condition() -> None:
    obj = yaml.safe_load((ARGOCD_DIR / "testdata" / "failed.yaml").read_text())
    obj["status"]["conditions"] += [
        {"type": "Succeeded", "status": "True", "reason": "Stale"},
        {"type": "Suspended", "status": "True", "reason": "Stale"},
    ]
    assert evaluate(obj)[0] == "Degraded"


def render_snippet() -> str:
    """The ``argocd-cm`` patch that ships the script (kept byte-identical by a test)."""
    body = "".join(f"    {line}".rstrip() + "\n" for line in SCRIPT.read_text().splitlines())
    return (
        "# Generated from health.lua by tests/unit/test_argocd_health.py; do not edit.\n"
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
    assert SNIPPET.read_text() == render_snippet(), (
        "charts/kubetune/argocd/argocd-cm.yaml is stale: run "
        "`.venv/bin/python -m tests.unit.test_argocd_health`"
    )
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    assert data[CM_KEY].strip() == SCRIPT.read_text().strip()


if __name__ == "__main__":
    SNIPPET.write_text(render_snippet())
    print(f"wrote {SNIPPET}", file=sys.stderr)
