"""Python functions with docstrings -> instruction/response pairs.

Backs both ``kubetune data code-instructions`` and the trainer's ``codeFunctions``
dataset format, so the pairs a user previews locally are the pairs that train.
"""

from __future__ import annotations

import ast
import io
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CodeFunction:
    """A documented function found in a source file."""

    name: str
    signature: str
    docstring: str
    source: str
    line: int


def functions_with_docstrings(source: str) -> list[CodeFunction]:
    """Every (async) function or method of ``source`` that has a docstring, in file order.

    Raises ``SyntaxError`` when ``source`` is not valid Python.
    """
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        docstring = ast.get_docstring(node)
        body = ast.get_source_segment(source, node)
        if not docstring or not docstring.strip() or body is None:
            continue
        prefix = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        signature = f"{prefix}def {node.name}({ast.unparse(node.args)}){returns}"
        found.append(CodeFunction(node.name, signature, docstring.strip(), body, node.lineno))
    return sorted(found, key=lambda f: f.line)


def instruction(function: CodeFunction) -> str:
    """The instruction that asks for ``function``: its signature and its docstring."""
    return f"Write a Python function `{function.signature}`.\n\n{function.docstring}"


def instruction_row(function: CodeFunction) -> dict[str, str]:
    """One JSONL row: ``instruction`` and ``response`` (the function's source)."""
    return {"instruction": instruction(function), "response": function.source}


def _archive_members(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """``.py`` members of a zip or tar archive (any compression tarfile understands)."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".py") and not info.is_dir():
                    yield f"{name}:{info.filename}", archive.read(info)
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is not None and member.name.endswith(".py"):
                yield f"{name}:{member.name}", extracted.read()


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def python_sources(files: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, bytes]]:
    """``.py`` files among ``files``, archives opened."""
    for name, data in files:
        if name.endswith(ARCHIVE_SUFFIXES):
            yield from _archive_members(name, data)
        elif name.endswith(".py"):
            yield name, data


@dataclass
class Extraction:
    """Rows extracted from a source tree, and the files that could not be used."""

    rows: list[dict[str, str]] = field(default_factory=list)
    files: int = 0
    skipped: list[str] = field(default_factory=list)


def extract(files: Iterable[tuple[str, bytes]]) -> Extraction:
    """Instruction rows from every documented function; unparsable files reported."""
    result = Extraction()
    for name, data in python_sources(files):
        result.files += 1
        try:
            functions = functions_with_docstrings(data.decode("utf-8"))
        except UnicodeDecodeError:
            result.skipped.append(f"{name}: not UTF-8 text")
            continue
        except SyntaxError as error:
            result.skipped.append(f"{name}: line {error.lineno}: {error.msg}")
            continue
        result.rows.extend(instruction_row(f) for f in functions)
    return result
