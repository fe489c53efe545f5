"""The previous release of kubetune, for upgrade tests: its chart and its operator image,
from a recorded commit of this repository.

Why a commit and not a published chart: nothing can be downloaded here, and a commit is
what a release tag would point at. :data:`PREVIOUS` is the last commit before this wave's
breaking changes (``reward.modelUri`` became ``reward.model``; the CRDs moved from the
chart's ``crds/`` into ``templates/crds/``), so an upgrade from it crosses both.

The tree is exported once (``git archive``) into the cache, keyed by commit; its operator
image is built from that tree like the current one (:mod:`devenv.images`) and kept in the
node's image store under its own tag.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from devenv import build
from devenv.images import OPERATOR, ROOT, ImageSpec

#: The previous release: the commit its tag would name.
PREVIOUS = "0fc8bb4f678f9d00ceb13cd4530aaeb1051a150f"


def export(commit: str = PREVIOUS) -> Path:
    """The tree of ``commit``, exported into the cache on first use."""
    target = build.cache_root() / "releases" / commit
    if target.is_dir():
        return target
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise RuntimeError(
            f"cannot export release {commit} (a clone without that history?): "
            f"{archive.stderr.decode(errors='replace').strip()}"
        )
    partial = target.with_name(f"{commit}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(partial, filter="data")
    partial.rename(target)  # whole or absent: an interrupted export is redone
    return target


def chart(commit: str = PREVIOUS) -> Path:
    """The release's Helm chart."""
    return export(commit) / "charts" / "kubetune"


def image_tag(commit: str = PREVIOUS) -> str:
    """The tag of the release's operator image (the chart's ``image.tag``)."""
    return f"release-{commit[:7]}"


def operator_image(commit: str = PREVIOUS) -> ImageSpec:
    """The release's operator image, built from its own tree and Dockerfile."""
    root = export(commit)
    repository = OPERATOR.ref.rsplit(":", 1)[0]
    return ImageSpec(
        f"operator-{commit[:7]}",
        root / OPERATOR.dockerfile.relative_to(ROOT),
        OPERATOR.base_arg,
        f"{repository}:{image_tag(commit)}",
        root,
    )
