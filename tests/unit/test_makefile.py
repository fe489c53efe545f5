"""The Makefile keeps the promises the docs make: every ``make X`` they mention is a
target, every target is phony and described, ``make help`` lists them all, and CI runs
targets instead of repeating their recipes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text()
#: Where a newcomer reads ``make X``: inline code, a command at the start of a line (code
#: blocks, scripts, docstrings) or in parentheses.
MENTION = re.compile(r"(?:`|^[ \t]*|\()make ([A-Za-z0-9][A-Za-z0-9._-]*)", re.MULTILINE)
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "examples").glob("*.yaml")),
    ROOT / ".ci" / "run",
    *sorted((ROOT / "devenv").rglob("*.py")),
    *sorted((ROOT / "bench").rglob("*.py")),
]


def _targets() -> list[str]:
    """Named targets, in file order (file targets such as ``$(VENV)/.installed`` and
    special ones such as ``.PHONY`` left out)."""
    return re.findall(r"^([A-Za-z0-9_-][A-Za-z0-9._-]*):(?!=)", MAKEFILE, re.MULTILINE)


def _phony() -> set[str]:
    declared = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", MAKEFILE, re.MULTILINE)
    assert declared is not None
    return set(declared.group(1).replace("\\\n", " ").split())


def test_every_make_command_the_docs_mention_is_a_target() -> None:
    targets = set(_targets())
    missing = {
        f"{path.relative_to(ROOT)}: make {name}"
        for path in DOCUMENTS
        for name in MENTION.findall(path.read_text())
        if name not in targets
    }
    assert not missing


def test_every_target_is_phony_and_described() -> None:
    targets = _targets()
    assert set(targets) - {".PHONY"} == _phony()
    undescribed = [
        t
        for t in targets
        if t != ".PHONY" and not re.search(rf"^{re.escape(t)}:.*## ", MAKEFILE, re.M)
    ]
    assert not undescribed


def test_help_lists_every_target() -> None:
    proc = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    listed = [line.split("\t", 1)[0] for line in proc.stdout.splitlines()]
    assert listed == _targets()


def test_ci_runs_the_makefile_targets_and_no_recipe_of_its_own() -> None:
    """``.ci/run`` is a fresh venv, ``make test`` and ``make lint``: a tool it called
    directly (pytest, ruff, mypy, pip) would drift from what ``make`` runs."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    made = [name for c in commands for name in re.findall(r"\bmake ([\w.-]+)", c)]
    assert made == ["venv", "test", "lint"]
    for tool in ("pytest", "ruff", "mypy", "pip", "lint-imports", "kubetune"):
        assert not any(re.search(rf"\b{tool}\b", c) for c in commands), tool
