"""The container images, checked without a container engine.

What can be checked here: the Dockerfiles follow the rules the chart and the operator
rely on (non-root numeric users that match the pod security contexts, the trainer as
entry point, OCI labels, pinned installs), and the constraints files pin what the
pyproject files require. pip's resolution of the pins for the images' own Python and
platform, and the install in a fresh venv, are tests/tools/test_image_installs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

from kubetune_contract import pod
from tests.images.requirements import TARGETS, project_requirements, read_pins

ROOT = Path(__file__).resolve().parents[2]
TRAINER_DOCKERFILE = ROOT / "trainer-image" / "Dockerfile"
OPERATOR_DOCKERFILE = ROOT / "deploy" / "operator.Dockerfile"
CHART_VALUES = ROOT / "charts" / "kubetune" / "values.yaml"


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
    pins = read_pins(constraints)
    for req in project_requirements(target):
        key = canonicalize_name(req.name)
        assert key in pins, f"{req.name} is required by {target} but not pinned"
        assert req.specifier.contains(pins[key], prereleases=True), (
            f"{constraints.name} pins {req.name}=={pins[key]}, pyproject asks {req}"
        )


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
