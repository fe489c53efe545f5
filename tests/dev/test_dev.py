"""``make dev-cluster`` (``python -m devenv dev``) as a developer runs it: start, use
what it prints, train, Ctrl-C.

The quickstart manifest (``examples/quickstart-cluster.yaml``) is applied unchanged
except for fewer steps, with kubectl and the exports it printed, so the
documented path (no node selector, the ``s3-credentials`` Secret, the uploaded data)
is what is tested.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import yaml

from devenv import build, network
from devenv.containerd import mounts_below
from devenv.dev import EXAMPLES
from devenv.process import poll

pytestmark = [pytest.mark.e2e, pytest.mark.node]

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "# Ctrl-C stops everything."


def _read_until_ready(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("devenv dev exited:\n" + "".join(lines))
        lines.append(line)
        if line.strip() == READY_LINE:
            return lines
    raise AssertionError("devenv dev not ready in time:\n" + "".join(lines))


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _refuses(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as s:
        return s.connect_ex((parsed.hostname or "", parsed.port or 0)) != 0


def test_kubetune_dev_trains_the_quickstart_and_stops_cleanly(tmp_path: Path) -> None:
    bins = build.ensure_built()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    crd = os.environ.get("KUBETUNE_E2E_CRD")
    args = [
        sys.executable,
        "-m",
        "devenv",
        "dev",
        "--workdir",
        str(tmp_path / "dev"),
        *(["--crd", crd] if crd else []),
    ]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    try:
        lines = _read_until_ready(proc, timeout=900)  # images are rebuilt first if stale
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", "".join(lines), flags=re.M))
        assert set(exports) >= {"KUBECONFIG", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"}
        shell = {**os.environ, **exports, "PATH": f"{bins.kubectl.parent}:{os.environ['PATH']}"}

        def kubectl(*a: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                ["kubectl", *a],
                env=shell,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        s3 = boto3.client(
            "s3",
            endpoint_url=exports["AWS_ENDPOINT_URL"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            region_name=exports["AWS_DEFAULT_REGION"],
        )
        listed = s3.list_objects_v2(Bucket="kubetune", Prefix="quickstart-data/")["Contents"]
        uploaded = {o["Key"].removeprefix("quickstart-data/") for o in listed}
        assert uploaded == {p.name for p in (EXAMPLES / "quickstart-data").iterdir()}
        secret = json.loads(kubectl("get", "secret", "s3-credentials", "-o", "json"))
        assert set(secret["data"]) >= {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL",
        }

        manifest = yaml.safe_load((EXAMPLES / "quickstart-cluster.yaml").read_text())
        manifest["spec"]["training"]["maxSteps"] = 4
        kubectl("apply", "-f", "-", stdin=json.dumps(manifest))  # YAML would unquote "3e-3"

        def state() -> str | None:
            found = kubectl("get", "ftj", "quickstart", "-o", "jsonpath={.status.state}")
            return found if found in ("Succeeded", "Failed") else None

        assert poll(state, what="the quickstart finishes", timeout=180, interval=1) == "Succeeded"
        result = json.loads(kubectl("get", "ftj", "quickstart", "-o", "jsonpath={.status.result}"))
        assert result["adapterUri"] == "s3://kubetune/quickstart"
        keys = {
            o["Key"]
            for o in s3.list_objects_v2(Bucket="kubetune", Prefix="quickstart/")["Contents"]
        }
        assert {"quickstart/adapter_model.safetensors", "quickstart/manifest.json"} <= keys
        assert "INFO kubetune_trainer: Succeeded" in kubectl("logs", "job/quickstart")
        server = yaml.safe_load(Path(exports["KUBECONFIG"]).read_text())["clusters"][0]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert _refuses(server["cluster"]["server"]), "the API server stopped"
    assert _refuses(exports["AWS_ENDPOINT_URL"]), "S3 stopped"
    assert not network.netns_exists("kubetune-node"), "the node's network namespace is gone"
    workdir = str(tmp_path / "dev")
    left = [p for p in Path("/proc").glob("[0-9]*") if workdir in _cmdline(p)]
    assert not left, f"processes left running: {[_cmdline(p) for p in left]}"
    assert not mounts_below(tmp_path), "nothing stays mounted"
