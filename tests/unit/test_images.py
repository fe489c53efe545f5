"""The container images, checked without a container engine.

What can be checked here: the Dockerfiles follow the rules the chart and the operator
rely on (non-root numeric users that match the pod security contexts, the trainer as
entry point, OCI labels, pinned installs), and the constraints files resolve with pip
for the images' own Python and platform and pin everything that resolution installs.
The install itself is repeated in a fresh venv by :mod:`tests.images.fresh_venv`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kubetune_contract import pod
from tests.images import fresh_venv

ROOT = Path(__file__).resolve().parents[2]
TRAINER_DOCKERFILE = ROOT / "trainer-image" / "Dockerfile"
OPERATOR_DOCKERFILE = ROOT / "deploy" / "operator.Dockerfile"
CHART_VALUES = ROOT / "charts" / "kubetune" / "values.yaml"

#: (what the image installs, constraints file, the image's CPython version). Ubuntu 24.04
#: (the CUDA base) ships Python 3.12; the operator's python:3.11-slim image matches the venv.
TARGETS = [
    ("kubetune-trainer", ROOT / "trainer-image" / "constraints.txt", "3.12"),
    ("kubetune[operator]", ROOT / "deploy" / "operator-constraints.txt", "3.11"),
]
#: This repository's distributions (installed from source, never pinned).
PROJECTS = {
    "kubetune": ROOT / "pyproject.toml",
    "kubetune-contract": ROOT / "contract" / "pyproject.toml",
    "kubetune-trainer": ROOT / "trainer-image" / "pyproject.toml",
}
#: glibc 2.36 (bookworm) and 2.39 (noble) accept every manylinux tag up to their own.
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{m}_x86_64" for m in range(17, 37))]


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _project_requirements(target: str) -> list[Requirement]:
    """The third-party requirements of ``target`` and of our distributions it pulls in."""
    root = Requirement(target)
    project = tomllib.loads(PROJECTS[root.name].read_text())["project"]
    extras = project.get("optional-dependencies", {})
    texts = project["dependencies"] + [t for extra in sorted(root.extras) for t in extras[extra]]
    found: list[Requirement] = []
    for req in map(Requirement, texts):
        found += _project_requirements(req.name) if req.name in PROJECTS else [req]
    return found


def _instructions(dockerfile: Path, keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [
        line.split(None, 1)[1].strip()
        for line in text.splitlines()
        if line.split(None, 1)[:1] == [keyword]
    ]


@pytest.mark.parametrize(("target", "constraints", "python"), TARGETS, ids=["trainer", "operator"])
def test_pins_satisfy_the_project_requirements(target: str, constraints: Path, python: str) -> None:
    pins = _pins(constraints)
    for req in _project_requirements(target):
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is required by {target} but not pinned"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{constraints.name} pins {req.name}=={pins[key]}, pyproject asks {req}"
        )


@pytest.mark.parametrize(("target", "constraints", "python"), TARGETS, ids=["trainer", "operator"])
def test_constraints_resolve_for_the_image_python_and_pin_everything(
    target: str, constraints: Path, python: str, tmp_path: Path
) -> None:
    """pip resolves ``target``'s requirements under the pins, wheels only, for the
    image's interpreter and platform; every package it would install is pinned."""
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("\n".join(str(r) for r in _project_requirements(target)) + "\n")
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
    pins = _pins(constraints)
    unpinned = sorted(set(installed) - set(pins))
    assert not unpinned, f"resolved but not pinned in {constraints.name}: {unpinned}"
    assert all(pins[name] == version for name, version in installed.items())
    if target == "kubetune-trainer":
        assert {"torch", "trl", "peft", "bitsandbytes"} <= set(installed)
    else:
        assert "torch" not in installed, "the operator image must stay slim"


def test_trainer_image_runs_as_the_user_the_pod_security_context_names() -> None:
    # High (scanners ask for >= 10000): a low UID is a real account on many hosts.
    assert pod.RUN_AS_USER >= 10000
    assert _instructions(TRAINER_DOCKERFILE, "USER") == [f"{pod.RUN_AS_USER}:{pod.RUN_AS_USER}"]
    run = " ".join(_instructions(TRAINER_DOCKERFILE, "RUN"))
    assert f"--uid {pod.RUN_AS_USER} --gid {pod.RUN_AS_USER}" in run
    assert f"groupadd --gid {pod.RUN_AS_USER}" in run


def test_operator_image_runs_as_the_user_the_chart_names() -> None:
    values = yaml.safe_load(CHART_VALUES.read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert uid != 0 and values["podSecurityContext"]["runAsNonRoot"] is True
    assert _instructions(OPERATOR_DOCKERFILE, "USER") == [f"{uid}:{uid}"]


def test_entrypoints() -> None:
    assert _instructions(TRAINER_DOCKERFILE, "ENTRYPOINT") == ['["kubetune-trainer"]']
    assert _instructions(OPERATOR_DOCKERFILE, "ENTRYPOINT") == ['["kubetune"]']
    assert _instructions(OPERATOR_DOCKERFILE, "CMD") == ['["operator"]']
    # The operator renders `python -m kubetune_trainer` / `torchrun`: the venv comes first.
    env = " ".join(_instructions(TRAINER_DOCKERFILE, "ENV"))
    assert "PATH=/opt/kubetune/bin:$PATH" in env


@pytest.mark.parametrize(
    "dockerfile", [TRAINER_DOCKERFILE, OPERATOR_DOCKERFILE], ids=["trainer", "operator"]
)
def test_dockerfile_installs_only_pinned_wheels_and_labels_the_image(dockerfile: Path) -> None:
    runs = [r for r in _instructions(dockerfile, "RUN") if "pip install" in r]
    assert len(runs) == 2
    deps, project = runs
    assert "-c /tmp/constraints.txt" in deps and "--only-binary=:all:" in deps
    assert "--no-deps" in project and "pip check" in project
    labels = " ".join(_instructions(dockerfile, "LABEL"))
    for key in ("title", "description", "version", "revision", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels
    for source in _instructions(dockerfile, "COPY"):
        if source.startswith("--from"):
            continue
        for path in source.split()[:-1]:
            assert (ROOT / path).exists(), f"{dockerfile.name} copies missing {path}"


def test_dockerignore_lets_every_copied_path_through() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for dockerfile in (TRAINER_DOCKERFILE, OPERATOR_DOCKERFILE):
        for source in _instructions(dockerfile, "COPY"):
            if source.startswith("--from"):
                continue
            for path in source.split()[:-1]:
                assert any(path.rstrip("/").startswith(a) for a in allowed), path


def test_operator_image_starts_from_a_fresh_venv(tmp_path: Path) -> None:
    """The operator image's install steps, repeated in an empty venv (about a minute)."""
    log = fresh_venv.check("operator", tmp_path)
    assert any("kubetune operator --help" in line for line in log)
