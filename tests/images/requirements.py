"""What each image installs, as the tests read it: the third-party requirements of our
distributions (from their pyproject files) and the pins of the image's constraints file.

Shared by the checks of the pins without pip (tests/unit/test_images.py) and the pip
resolution of them (tests/tools/test_image_installs.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]

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


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a constraints file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def project_requirements(target: str) -> list[Requirement]:
    """The third-party requirements of ``target`` and of our distributions it pulls in."""
    root = Requirement(target)
    project = tomllib.loads(PROJECTS[root.name].read_text())["project"]
    extras = project.get("optional-dependencies", {})
    texts = project["dependencies"] + [t for extra in sorted(root.extras) for t in extras[extra]]
    found: list[Requirement] = []
    for req in map(Requirement, texts):
        found += project_requirements(req.name) if req.name in PROJECTS else [req]
    return found
