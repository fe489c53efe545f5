"""The import contracts `make lint` checks: the operator and the trainer meet only in
``kubetune_contract``, which imports neither, and nothing shipped imports ``devenv``.

Each contract is shown to fail on a tree that breaks it (a throwaway set of packages under
the real names, first on the path) and the repository itself is shown to keep them all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("kubetune", "kubetune_trainer", "kubetune_contract", "devenv")


def _lint(pythonpath: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(CONFIG)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def _tree(tmp_path: Path, importer: str | None = None, imported: str | None = None) -> str:
    """Empty packages under the real names; ``importer`` imports ``imported`` lazily, inside
    a function, as the CLI once did."""
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('"""stand-in"""\n')
    if importer and imported:
        (tmp_path / importer / "uses.py").write_text(
            f"def later() -> None:\n    import {imported}  # noqa: F401\n"
        )
    return str(tmp_path)


def test_a_tree_that_keeps_the_contracts_passes(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path))
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("importer", "imported", "contract"),
    [
        ("kubetune", "kubetune_trainer", "only through kubetune_contract"),
        ("kubetune_trainer", "kubetune", "only through kubetune_contract"),
        ("kubetune_contract", "kubetune", "imports neither the operator nor the trainer"),
        ("kubetune_contract", "kubetune_trainer", "imports neither the operator nor the trainer"),
        ("kubetune", "devenv", "nothing shipped imports the dev tooling"),
        ("kubetune_trainer", "devenv", "nothing shipped imports the dev tooling"),
    ],
)
def test_a_forbidden_import_fails_the_lint(
    tmp_path: Path, importer: str, imported: str, contract: str
) -> None:
    result = _lint(_tree(tmp_path, importer, imported))
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert f"{importer}.uses -> {imported}" in broken


def test_the_repository_keeps_the_contracts() -> None:
    path = os.pathsep.join(str(ROOT / d) for d in ("operator", "trainer-image", "contract", "."))
    result = _lint(path)
    assert result.returncode == 0, result.stdout[-3000:]
