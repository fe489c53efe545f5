"""Read dataset files (JSONL, JSON, Parquet, CSV, Python sources) from any supported URI.

Rows come back as plain dicts together with the SHA-256 of the bytes read, which the
result manifest records so that a result can be traced to the exact data it saw. Parsing
errors name the file and the line or row, because "invalid JSON" alone sends a user
searching through a million-row file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from kubetune_trainer import storage
from kubetune_trainer.errors import InvalidDataError

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".py")


@dataclass
class SourceFile:
    """One file read: where it came from, its digest and its rows (1-based row numbers)."""

    uri: str
    sha256: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def read_source(uri: str, *, split: str | None = None) -> list[SourceFile]:
    """Read a file, or every supported file directly inside a folder, or an ``hf://`` dataset."""
    if storage.scheme(uri) == "hf":
        return [_read_hub(uri, split or "train")]
    if uri.rstrip("/").endswith(SUFFIXES):
        return [read_file(uri)]
    names = [n for n in storage.list_names(uri) if n.endswith(SUFFIXES)]
    if not names:
        raise InvalidDataError(
            f"{uri}: no data found; expected a file ending in {', '.join(SUFFIXES)} "
            "or a folder holding such files"
        )
    return [read_file(storage.join(uri, name)) for name in names]


def read_file(uri: str) -> SourceFile:
    data = storage.read_bytes(uri)
    digest = hashlib.sha256(data).hexdigest()
    suffix = posixpath.splitext(uri.rstrip("/"))[1]
    parse = {
        ".jsonl": _parse_jsonl,
        ".json": _parse_json,
        ".parquet": _parse_parquet,
        ".csv": _parse_csv,
        ".py": _parse_python,
    }[suffix]
    rows = parse(uri, data)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InvalidDataError(
                f"{uri}, row {number}: expected an object with named fields, "
                f"got {type(row).__name__}"
            )
    if not rows:
        raise InvalidDataError(f"{uri}: the file holds no rows")
    return SourceFile(uri=uri, sha256=digest, rows=rows)


def _text(uri: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDataError(f"{uri}: not UTF-8 text (byte {exc.start})") from exc


def _parse_jsonl(uri: str, data: bytes) -> list[Any]:
    rows = []
    for number, line in enumerate(_text(uri, data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InvalidDataError(f"{uri}, line {number}: invalid JSON: {exc.msg}") from exc
    return rows


def _parse_json(uri: str, data: bytes) -> list[Any]:
    try:
        document = json.loads(_text(uri, data))
    except json.JSONDecodeError as exc:
        raise InvalidDataError(
            f"{uri}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    if isinstance(document, dict):
        # One object: an oasst message tree export, or a single example.
        return [document]
    if not isinstance(document, list):
        raise InvalidDataError(f"{uri}: expected a list of rows, got {type(document).__name__}")
    return document


def _parse_parquet(uri: str, data: bytes) -> list[Any]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise InvalidDataError(f"{uri}: not a readable Parquet file: {exc}") from exc
    return list(table.to_pylist())


def _parse_csv(uri: str, data: bytes) -> list[Any]:
    reader = csv.DictReader(io.StringIO(_text(uri, data)))
    rows = []
    for row in reader:
        if None in row:
            raise InvalidDataError(
                f"{uri}, line {reader.line_num}: more values than the header has columns"
            )
        rows.append(dict(row))
    return rows


def _parse_python(uri: str, data: bytes) -> list[Any]:
    """A Python source file is one row for the ``codeFunctions`` format."""
    return [{"code": _text(uri, data), "path": uri}]


def _read_hub(uri: str, split: str) -> SourceFile:
    import datasets

    from kubetune_trainer.sources import hub_token

    name = uri[len("hf://") :]
    name, _, revision = name.partition("@")
    try:
        loaded = datasets.load_dataset(
            name, split=split, revision=revision or None, token=hub_token()
        )
    except Exception as exc:  # the hub client raises many types; all mean "cannot read"
        raise InvalidDataError(f"{uri}: cannot load split {split!r}: {exc}") from exc
    fingerprint = hashlib.sha256(str(loaded._fingerprint).encode()).hexdigest()
    return SourceFile(uri=uri, sha256=fingerprint, rows=list(loaded))
