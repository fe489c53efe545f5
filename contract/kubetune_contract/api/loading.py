"""Reading FineTuneJob documents from dicts and YAML text, with field-naming errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from kubetune_contract.api.errors import FieldError, InvalidManifest, field_errors
from kubetune_contract.api.job import API_VERSION, KIND, FineTuneJob


def parse_finetunejob(document: Any) -> FineTuneJob:
    """Validate one decoded document as a FineTuneJob.

    Raises :class:`InvalidManifest` listing every problem; never another exception type
    for bad input, whatever the document holds.
    """
    if not isinstance(document, dict):
        raise InvalidManifest(
            [FieldError("", f"expected a mapping, got {type(document).__name__}")]
        )
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if kind != KIND or api_version != API_VERSION:
        raise InvalidManifest(
            [
                FieldError(
                    "",
                    f"not a FineTuneJob: apiVersion {api_version!r}, kind {kind!r} "
                    f"(expected apiVersion {API_VERSION}, kind {KIND})",
                )
            ]
        )
    try:
        return FineTuneJob.model_validate(document)
    except ValidationError as error:
        raise InvalidManifest(field_errors(error, model=FineTuneJob)) from None


@dataclass(frozen=True)
class Document:
    """One YAML document of a file, with its position for messages."""

    index: int
    content: Any


def read_documents(text: str) -> Iterator[Document]:
    """Split multi-document YAML; skips empty documents. Raises ``yaml.YAMLError``."""
    for index, content in enumerate(yaml.safe_load_all(text)):
        if content is not None:
            yield Document(index, content)
