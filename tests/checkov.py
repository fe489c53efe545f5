"""Checkov, the policy scanner platform teams run over what they install, as a test tool.

Why a venv of its own, in the cache, instead of the project's ``dev`` extra: checkov pins
old releases of boto3/botocore (1.35), which the trainer's s3fs/aiobotocore stack can't
use, so installing it next to the project would downgrade what the trainer is tested
with. The pinned version is installed once with pip into ``<cache>/tools/`` (like the
helm build) and run as a command. ``--skip-download`` keeps every run offline: checkov
then uses only the checks it ships and contacts nothing.

    .venv/bin/python -m tests.checkov   # install it ahead of a test run
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv import build

CHECKOV_VERSION = "3.3.30"


def checkov_binary() -> Path:
    """The pinned checkov, installed into its own venv on first use."""
    venv = build.cache_root() / "tools" / f"checkov-{CHECKOV_VERSION}"
    binary = venv / "bin" / "checkov"
    if (venv / ".built").is_file() and binary.is_file():
        return binary
    base = Path(getattr(sys, "_base_executable", sys.executable))
    for command in (
        [str(base), "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"],
    ):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"installing checkov failed: {' '.join(command)}\n{proc.stderr}")
    (venv / ".built").write_text(CHECKOV_VERSION + "\n")
    return binary


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one resource."""

    check: str
    name: str
    resource: str
    file: str
    passed: bool


def scan(directory: Path) -> list[Finding]:
    """Every Kubernetes check checkov ships, over the manifests in ``directory``."""
    proc = subprocess.run(
        [
            str(checkov_binary()),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():  # 1: some check failed
        raise RuntimeError(f"checkov failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    report: Any = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    findings = []
    for part in reports:
        if part.get("check_type") != "kubernetes":
            continue
        for key, passed in (("passed_checks", True), ("failed_checks", False)):
            for result in part["results"][key]:
                findings.append(
                    Finding(
                        check=result["check_id"],
                        name=result["check_name"],
                        resource=result["resource"],
                        file=result["file_path"].lstrip("/"),
                        passed=passed,
                    )
                )
    return findings


def main() -> int:
    print(f"checkov {CHECKOV_VERSION}: {checkov_binary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
