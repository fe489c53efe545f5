"""The images' pins resolved by pip, and the operator image's install repeated in a fresh
venv: both need pip with a package index (the dev machine's, or the network).

The checks of the Dockerfiles and the pins that need no pip are tests/unit/test_images.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.images import fresh_venv
from tests.images.requirements import TARGETS, project_requirements, read_pins

pytestmark = pytest.mark.tools

#: glibc 2.36 (bookworm) and 2.39 (noble) accept every manylinux tag up to their own.
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{m}_x86_64" for m in range(17, 37))]


@pytest.mark.parametrize(("target", "constraints", "python"), TARGETS, ids=["trainer", "operator"])
def test_constraints_resolve_for_the_image_python_and_pin_everything(
    target: str, constraints: Path, python: str, tmp_path: Path
) -> None:
    """pip resolves ``target``'s requirements under the pins, wheels only, for the
    image's interpreter and platform; every package it would install is pinned."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(str(r) for r in project_requirements(target)) + "\n")
    report = tmp_path / "report.json"
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            *platforms,
            "-c",
            str(constraints),
            "-r",
            str(reqs),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    installed = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    pins = read_pins(constraints)
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"resolved but not pinned in {constraints.name}: {unpinned}"
    assert all(pins[name] == version for name, version in installed.items())
    if target == "kubetune-trainer":
        assert {"torch", "trl", "peft", "bitsandbytes"} <= set(installed)
    else:
        assert "torch" not in installed, "the operator image must stay slim"


def test_operator_image_starts_from_a_fresh_venv(tmp_path: Path) -> None:
    """The operator image's install steps, repeated in an empty venv (about a minute)."""
    log = fresh_venv.check("operator", tmp_path)
    assert any("kubetune operator --help" in line for line in log)
