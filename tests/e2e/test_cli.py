"""The user's CLI against a job that really trains: ``kubetune get``, ``watch``, ``logs``.

One small FineTuneJob runs while ``kubetune watch`` and ``kubetune logs -f`` follow it as
separate processes, the way a user runs them in two terminals; afterwards ``get`` and
``logs`` read the finished job, and the error paths (unknown job, unreachable cluster)
are checked for their one-line messages.
"""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.cluster import ControlPlane
from devenv.process import free_port
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

KUBETUNE = str(Path(sysconfig.get_path("scripts")) / "kubetune")


def _start(cp: ControlPlane, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [KUBETUNE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cp.env(),
    )


def _run(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBETUNE, *args], capture_output=True, text=True, env=cp.env(), timeout=60, check=False
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{proc.args!r} did not end:\n{out}") from None
    return proc.returncode, out


def test_get_watch_and_logs_follow_a_training_job(control_plane: ControlPlane, e2e: E2E) -> None:
    ns = ["-n", e2e.namespace]
    e2e.create(e2e.manifest("cli", maxSteps=120))
    watch = _start(control_plane, "watch", "cli", *ns, "--interval=0.5")
    e2e.wait(
        lambda: any(p["status"].get("phase") == "Running" for p in e2e.pods("cli")),
        "the trainer pod runs",
    )
    follow = _start(control_plane, "logs", "cli", *ns, "--follow")

    code, out = _finish(watch)
    assert code == 0, out
    steps = [int(m) for m in re.findall(r"^Running .*?(\d+)/120 ", out, flags=re.M)]
    assert len(steps) >= 2 and steps == sorted(steps), out
    final = out.rstrip().splitlines()[-3:]
    assert final[0].startswith("cli: Succeeded (Succeeded: training finished at step 120"), out
    assert final[1:] == [
        f"  adapterUri: {e2e.output_uri('cli')}",
        f"  manifestUri: {e2e.output_uri('cli')}/manifest.json",
    ]

    code, followed = _finish(follow, timeout=60)
    assert code == 0, followed
    assert "data: 480 training rows" in followed
    assert re.search(r"INFO kubetune_trainer: Succeeded: ", followed), "followed to the exit"

    table = _run(control_plane, "get", *ns)
    assert table.returncode == 0, table.stdout
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "STATE", "METHOD", "STEPS"]
    assert row.split()[:5] == ["cli", "Succeeded", "sft", "120/120", "(100%)"]

    logs = _run(control_plane, "logs", "cli", *ns)
    assert logs.returncode == 0
    assert logs.stdout == followed, "the follow ended with the container, not before"


def test_cli_errors_are_one_line(control_plane: ControlPlane, e2e: E2E, tmp_path: Path) -> None:
    missing = _run(control_plane, "logs", "nope", "-n", e2e.namespace)
    assert missing.returncode == 1
    assert missing.stdout.strip().splitlines() == [
        f"error: finetunejob 'nope' in namespace '{e2e.namespace}': not found"
    ]
    config: dict[str, Any] = yaml.safe_load(control_plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    unreachable = _run(control_plane, "get", "--kubeconfig", str(dead))
    assert unreachable.returncode == 1
    lines = unreachable.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the cluster at"), lines
