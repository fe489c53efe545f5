"""Build a fresh virtual environment the way an image does, and start its entry points.

Why: no container engine runs on the development machines, so the closest check of an
image is to repeat its install steps — the pinned constraints, then the project with
``--no-deps``, then ``pip check`` — in an empty venv and run what the image runs. It
proves the pins are complete and consistent and the entry points import.

    .venv/bin/python -m tests.images.fresh_venv operator   # ~1 minute
    .venv/bin/python -m tests.images.fresh_venv trainer    # torch stack: several GB, slow

The operator variant also runs in the test suite (tests/tools/test_image_installs.py); the trainer
variant downloads the whole CUDA PyTorch stack, so it is run by hand before a release.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Image:
    """What one image installs and what must start in it."""

    constraints: Path
    sources: tuple[Path, ...]
    """The distributions of this repository it installs (``--no-deps``, in this order)."""
    smoke: tuple[tuple[str, ...], ...]
    """Commands (relative to the venv's bin/) that must exit 0."""
    absent: tuple[str, ...]
    """Packages of the other side that must not be importable in it."""


IMAGES = {
    "operator": Image(
        ROOT / "deploy" / "operator-constraints.txt",
        (ROOT / "contract", ROOT),
        (("kubetune", "--version"), ("kubetune", "operator", "--help")),
        ("kubetune_trainer", "torch"),
    ),
    "trainer": Image(
        ROOT / "trainer-image" / "constraints.txt",
        (ROOT / "contract", ROOT / "trainer-image"),
        (("python", "-m", "kubetune_trainer", "--help"), ("kubetune-trainer", "--help")),
        ("kubetune", "kopf"),
    ),
}


def _run(cmd: list[str], log: list[str]) -> str:
    started = time.monotonic()
    # Only what the venv installed: no PYTHONPATH from the caller's checkout.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    log.append(f"$ {' '.join(cmd)}  ({time.monotonic() - started:.0f}s, rc {proc.returncode})")
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def check(name: str, workdir: Path) -> list[str]:
    """Install image ``name``'s pins and the project into a new venv; run its smoke tests.

    Returns the log (commands and seconds); raises RuntimeError with the output of the
    first command that failed.
    """
    image = IMAGES[name]
    env_dir = workdir / f"venv-{name}"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "--disable-pip-version-check"]
    log: list[str] = []
    _run(
        [
            *pip,
            "install",
            "-q",
            "--only-binary=:all:",
            "-c",
            str(image.constraints),
            "-r",
            str(image.constraints),
        ],
        log,
    )
    _run([*pip, "install", "-q", "--no-deps", *map(str, image.sources)], log)
    _run([*pip, "check"], log)
    for cmd in image.smoke:
        _run([str(bin_dir / cmd[0]), *cmd[1:]], log)
    probe = (
        "import importlib.util, sys; "
        "sys.exit(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)) or None)"
    )
    _run([str(bin_dir / "python"), "-c", probe, *image.absent], log)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", choices=sorted(IMAGES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubetune-image-") as tmp:
        try:
            log = check(args.image, Path(tmp))
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 1
    print("\n".join(log))
    print(f"{args.image}: fresh venv from the pins installs, passes pip check, starts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
