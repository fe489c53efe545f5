"""Evaluate the FineTuneJob health check with Argo CD's own code.

Why Argo CD's code and not a Lua interpreter: Argo CD runs health scripts in gopher-lua
with only the base, table, package and a "safe os" library open, and without the
string metatable, so ``string.format``, ``s:upper()`` and ``("%d%%"):format(n)`` all fail
there while a full Lua accepts them. ``argocd-health`` (``devenv/argocd/main.go``, built
against github.com/argoproj/argo-cd/v3 by :mod:`devenv.build`) reads the shipped
``argocd-cm.yaml`` patch with Argo CD's settings manager and runs gitops-engine's
``GetResourceHealth``, as ``argocd admin settings resource-overrides health`` does.

:func:`check` is what the cluster and end-to-end tests call on every FineTuneJob the
operator wrote: it asserts the health and message, and with ``KUBETUNE_ARGOCD_CAPTURE=DIR``
also saves the object there, so that ``python -m tests.argocd_health DIR`` can refresh the
Argo CD-format test cases (``charts/kubetune/argocd/testdata/``) from real operator output.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devenv import build

ROOT = Path(__file__).resolve().parents[1]
ARGOCD_DIR = ROOT / "charts" / "kubetune" / "argocd"
SCRIPT = ARGOCD_DIR / "health.lua"
ARGOCD_CM = ARGOCD_DIR / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.kubetune.io_FineTuneJob"
CAPTURE_ENV = "KUBETUNE_ARGOCD_CAPTURE"


class HealthError(RuntimeError):
    """Argo CD could not evaluate the script (a Lua error, a bad return value)."""


@functools.cache
def binary() -> Path:
    """The ``argocd-health`` program, built into the cache when missing (minutes, once)."""
    return build.build_component(build.ARGOCD_HEALTH) / "argocd-health"


def argocd_cm(script: str) -> str:
    """An argocd-cm ConfigMap carrying ``script`` under the FineTuneJob health key."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "namespace": "argocd"},
            "data": {CM_KEY: script},
        }
    )


def evaluate_all(
    objects: Sequence[dict[str, Any]], script: str | None = None
) -> list[tuple[str, str]]:
    """(status, message) for each object, from one ``argocd-health`` process.

    Without ``script``, the shipped ``argocd-cm.yaml`` is what Argo CD reads; otherwise a
    ConfigMap carrying ``script``.
    """
    with tempfile.TemporaryDirectory(prefix="argocd-health-") as tmp:
        cm = ARGOCD_CM
        if script is not None:
            cm = Path(tmp) / "argocd-cm.yaml"
            cm.write_text(argocd_cm(script))
        proc = subprocess.run(
            [str(binary()), str(cm)],
            input="".join(json.dumps(o) + "\n" for o in objects),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if proc.returncode != 0:
        raise HealthError(f"argocd-health exited {proc.returncode}: {proc.stderr}")
    results = []
    for line in proc.stdout.splitlines():
        answer = json.loads(line)
        if "error" in answer:
            raise HealthError(answer["error"])
        results.append((str(answer.get("status", "")), str(answer.get("message", ""))))
    return results


def evaluate(obj: dict[str, Any], script: str | None = None) -> tuple[str, str]:
    """(status, message) Argo CD reports for ``obj``."""
    (result,) = evaluate_all([obj], script)
    return result


def _capture(obj: dict[str, Any], case: str) -> None:
    folder = os.environ.get(CAPTURE_ENV)
    if not folder:
        return
    path = Path(folder) / f"{case}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))


def check(obj: dict[str, Any], case: str, status: str, message: str) -> tuple[str, str]:
    """Assert that Argo CD reports ``status`` and a message matching the regular
    expression ``message`` (whole) for a FineTuneJob the operator wrote; ``case`` names
    the state for the test cases captured from it."""
    _capture(obj, case)
    health = evaluate(obj)
    assert health[0] == status and re.fullmatch(message, health[1], re.DOTALL), (
        f"{case}: Argo CD says {health}, expected ({status!r}, /{message}/)\n"
        f"status: {json.dumps(obj.get('status'), indent=1)}"
    )
    return health


#: What a captured object keeps: what the health script reads, no cluster identity.
_KEPT_METADATA = ("name", "namespace", "generation")


def testdata(obj: dict[str, Any]) -> dict[str, Any]:
    """A captured FineTuneJob as an Argo CD test input: apiVersion, kind, metadata that
    matters, spec and status, exactly as the operator wrote them."""
    meta = {k: obj["metadata"][k] for k in _KEPT_METADATA if k in obj["metadata"]}
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": meta,
        "spec": obj["spec"],
        "status": obj.get("status"),
    }


def main(argv: list[str]) -> int:
    """Write each captured object of ``argv[0]`` into testdata/ (then review the cases)."""
    (folder,) = argv
    for path in sorted(Path(folder).glob("*.json")):
        target = ARGOCD_DIR / "testdata" / f"{path.stem}.yaml"
        target.write_text(yaml.safe_dump(testdata(json.loads(path.read_text())), sort_keys=False))
        print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
