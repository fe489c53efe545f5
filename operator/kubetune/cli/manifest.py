"""Reading FineTuneJob manifest files for the commands that take one (validate, run, eval).

Every problem becomes :class:`ManifestError` with one ``file: field: message`` line per
problem, so each command reports a bad file the way ``kubetune validate`` does, never
with a traceback.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kubetune.render.trainer_config import render_trainer_config
from kubetune_contract.api import FineTuneJob, InvalidManifest, parse_finetunejob
from kubetune_contract.api.loading import Document, read_documents
from kubetune_contract.api.trainer_config import TrainerConfig


class ManifestError(Exception):
    """A manifest file that cannot be used; ``lines`` says why, one problem per line."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def read_file(path: Path) -> list[Document]:
    """The non-empty YAML documents of ``path`` (at least one)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ManifestError([f"{path}: cannot read: {error.strerror or error}"]) from None
    try:
        documents = list(read_documents(text))
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        position = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ManifestError([f"{path}: invalid YAML{position}: {problem}"]) from None
    if not documents:
        raise ManifestError([f"{path}: no YAML documents"])
    return documents


def load_job(path: Path) -> FineTuneJob:
    """The one FineTuneJob in ``path``, validated as the API server would."""
    documents = read_file(path)
    if len(documents) != 1:
        raise ManifestError([f"{path}: expected one FineTuneJob, found {len(documents)} documents"])
    try:
        return parse_finetunejob(documents[0].content)
    except InvalidManifest as invalid:
        raise ManifestError([f"{path}: {problem}" for problem in invalid.errors]) from None


def run_config(path: Path) -> TrainerConfig:
    """The run config of the FineTuneJob in ``path``, rendered as the operator renders it,
    except that relative ``file://`` URIs mean "next to the manifest", as a user running a
    local file expects."""
    return render_trainer_config(load_job(path), base_dir=path.resolve().parent)
