"""Dataset formats: every accepted row shape, converted to one of five canonical kinds.

=====================  =====================================================  ===============
format                 columns                                                canonical kind
=====================  =====================================================  ===============
messages               ``messages`` (or ShareGPT ``conversations``)           conversation
promptCompletion       ``prompt`` [+ ``completion``] (strings or messages)    promptCompletion
preference             [``prompt``] + ``chosen`` + ``rejected``               preference
unpairedPreference     ``prompt`` + ``completion`` + ``label`` (bool)         unpaired
text                   ``text``                                               text
alpaca                 ``instruction`` [+ ``input``] + ``output``             promptCompletion
dolly                  ``instruction`` [+ ``context``] + ``response``         promptCompletion
oasst                  message rows (``message_id``, ``parent_id``, ``role``,  conversation
                       ``text``) or nested trees (``prompt`` with ``replies``)
codeFunctions          ``code`` (Python source; ``.py`` files too)            promptCompletion
=====================  =====================================================  ===============

Instruction formats become conversational prompt/completion pairs, so the chat template
applies and SFT's completion-only loss trains on the answer only. Converters raise
:class:`RowProblem` with a short problem; the caller adds the file and row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kubetune_contract.data import code
from kubetune_trainer.errors import InvalidDataError

log = logging.getLogger(__name__)

Kind = Literal["conversation", "promptCompletion", "preference", "unpaired", "text"]
Row = dict[str, Any]

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "tool": "tool",
}
OASST_ROLES = {"prompter": "user", "assistant": "assistant"}


class RowProblem(ValueError):
    """A row does not fit its format; the message says why, the caller says where."""


@dataclass(frozen=True)
class Format:
    """A format: its canonical kind, the columns that identify it, and its converter."""

    name: str
    kind: Kind
    columns: tuple[str, ...]
    convert: Callable[[list[Row], str], list[tuple[int, Row]]]
    """(rows, uri) -> [(source row number, canonical row)]."""


def _per_row(function: Callable[[Row], Row]) -> Callable[[list[Row], str], list[tuple[int, Row]]]:
    """Lift a row converter to a file converter that names the file and row on failure."""

    def convert(rows: list[Row], uri: str) -> list[tuple[int, Row]]:
        out = []
        for number, row in enumerate(rows, start=1):
            try:
                out.append((number, function(row)))
            except RowProblem as exc:
                raise InvalidDataError(f"{uri}, row {number}: {exc}") from None
        return out

    return convert


def _string(row: Row, column: str, *, required: bool = True) -> str:
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowProblem(f"column {column!r} is missing or empty")
        return ""
    if not isinstance(value, str):
        raise RowProblem(f"column {column!r} must be a string, got {type(value).__name__}")
    return value


def _message_list(value: Any, column: str, roles: dict[str, str] | None = None) -> list[Row]:
    if not isinstance(value, list) or not value:
        raise RowProblem(f"column {column!r} must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise RowProblem(f"{column}[{index}] must be an object with role and content")
        if roles is not None and "from" in message:
            role, content = roles.get(str(message["from"])), message.get("value")
        else:
            role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RowProblem(f"{column}[{index}] has role {role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise RowProblem(f"{column}[{index}] content must be a string")
        messages.append({"role": role, "content": content})
    return messages


def _text_or_messages(row: Row, column: str) -> str | list[Row]:
    value = row.get(column)
    return _message_list(value, column) if isinstance(value, list) else _string(row, column)


def _messages(row: Row) -> Row:
    if "messages" in row:
        messages = _message_list(row["messages"], "messages")
    elif "conversations" in row:
        messages = _message_list(row["conversations"], "conversations", SHAREGPT_ROLES)
    else:
        raise RowProblem("column 'messages' is missing")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowProblem("the conversation has no assistant message to learn from")
    return {"messages": messages}


def _prompt_completion(row: Row) -> Row:
    out: Row = {"prompt": _text_or_messages(row, "prompt")}
    if row.get("completion") is not None:
        out["completion"] = _text_or_messages(row, "completion")
        if isinstance(out["prompt"], list) != isinstance(out["completion"], list):
            raise RowProblem("prompt and completion must both be strings or both message lists")
    return out


def _preference(row: Row) -> Row:
    out: Row = {
        "chosen": _text_or_messages(row, "chosen"),
        "rejected": _text_or_messages(row, "rejected"),
    }
    if isinstance(out["chosen"], list) != isinstance(out["rejected"], list):
        raise RowProblem("chosen and rejected must both be strings or both message lists")
    if row.get("prompt") is not None:
        out["prompt"] = _text_or_messages(row, "prompt")
    return out


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RowProblem(f"column 'label' must be true or false, got {value!r}")


def _unpaired(row: Row) -> Row:
    out = _prompt_completion(row)
    if "completion" not in out:
        raise RowProblem("column 'completion' is missing or empty")
    out["label"] = _label(row.get("label"))
    return out


def _text(row: Row) -> Row:
    return {"text": _string(row, "text")}


def _instruction(prompt: str, answer: str) -> Row:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def _alpaca(row: Row) -> Row:
    prompt = _string(row, "instruction")
    extra = _string(row, "input", required=False)
    return _instruction(f"{prompt}\n\n{extra}" if extra else prompt, _string(row, "output"))


def _dolly(row: Row) -> Row:
    prompt = _string(row, "instruction")
    context = _string(row, "context", required=False)
    prompt = f"{prompt}\n\nContext:\n{context}" if context else prompt
    return _instruction(prompt, _string(row, "response"))


def _code_functions(rows: list[Row], uri: str) -> list[tuple[int, Row]]:
    """Each documented Python function becomes its instruction -> its source.

    The pairs come from :mod:`kubetune_contract.data.code`, the logic behind ``kubetune data
    code-instructions``, so what a user previews locally is what trains. A file that does
    not parse, or holds no documented function, is skipped with a warning: a source tree
    often has a few (``__init__.py``, generated code); an empty result is refused later.
    """
    out: list[tuple[int, Row]] = []
    for number, row in enumerate(rows, start=1):
        where = row.get("path") or f"{uri}, row {number}"
        try:
            functions = code.functions_with_docstrings(_string(row, "code"))
        except RowProblem as exc:
            raise InvalidDataError(f"{uri}, row {number}: {exc}") from None
        except SyntaxError as exc:
            log.warning("%s: skipped, not valid Python (line %s: %s)", where, exc.lineno, exc.msg)
            continue
        if not functions:
            log.warning("%s: skipped, no Python function with a docstring", where)
        out.extend((number, _instruction(code.instruction(f), f.source)) for f in functions)
    return out


def _oasst_nodes(rows: list[Row], uri: str) -> list[tuple[int, Row]]:
    """Flatten nested oasst trees (``prompt`` with ``replies``) into message rows."""
    flat: list[tuple[int, Row]] = []

    def walk(number: int, node: Row, parent: str | None) -> None:
        ident = str(node.get("message_id") or f"row{number}-{len(flat)}")
        flat.append((number, {**node, "message_id": ident, "parent_id": parent}))
        for reply in node.get("replies") or []:
            walk(number, reply, ident)

    for number, row in enumerate(rows, start=1):
        if isinstance(row.get("prompt"), dict):
            walk(number, row["prompt"], None)
        else:
            flat.append((number, row))
    return flat


def _oasst(rows: list[Row], uri: str) -> list[tuple[int, Row]]:
    """Message trees -> one conversation per path from a root to a leaf."""
    nodes = _oasst_nodes(rows, uri)
    by_id: dict[str, tuple[int, Row]] = {}
    children: dict[str | None, list[str]] = {}
    for number, node in nodes:
        if node.get("deleted"):
            continue
        ident = node.get("message_id")
        if (
            ident is None
            or node.get("role") not in OASST_ROLES
            or not isinstance(node.get("text"), str)
        ):
            raise InvalidDataError(
                f"{uri}, row {number}: an oasst message needs message_id, role "
                "(prompter or assistant) and text"
            )
        by_id[str(ident)] = (number, node)
        parent = node.get("parent_id")
        children.setdefault(None if parent is None else str(parent), []).append(str(ident))
    for parent in children:
        if parent is not None and parent not in by_id:
            number = by_id[children[parent][0]][0]
            raise InvalidDataError(f"{uri}, row {number}: parent_id {parent!r} not found")
    out = []
    stack: list[tuple[str, list[Row]]] = [(root, []) for root in children.get(None, [])]
    while stack:
        ident, path = stack.pop()
        number, node = by_id[ident]
        path = [*path, {"role": OASST_ROLES[node["role"]], "content": node["text"]}]
        kids = children.get(ident, [])
        if not kids:
            while path and path[-1]["role"] != "assistant":
                path = path[:-1]
            if path:
                out.append((number, {"messages": path}))
        stack.extend((kid, path) for kid in reversed(kids))
    if not out:
        raise InvalidDataError(f"{uri}: no oasst conversation with an assistant reply found")
    return out


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("oasst", "conversation", ("message_id", "parent_id", "role", "text"), _oasst),
        Format("messages", "conversation", ("messages",), _per_row(_messages)),
        Format("preference", "preference", ("chosen", "rejected"), _per_row(_preference)),
        Format(
            "unpairedPreference", "unpaired", ("prompt", "completion", "label"), _per_row(_unpaired)
        ),
        Format("alpaca", "promptCompletion", ("instruction", "output"), _per_row(_alpaca)),
        Format("dolly", "promptCompletion", ("instruction", "response"), _per_row(_dolly)),
        Format(
            "promptCompletion",
            "promptCompletion",
            ("prompt", "completion"),
            _per_row(_prompt_completion),
        ),
        Format("codeFunctions", "promptCompletion", ("code",), _code_functions),
        Format("text", "text", ("text",), _per_row(_text)),
    )
}


def detect(rows: list[Row], uri: str) -> Format:
    """Pick the format whose identifying columns the first rows have (order matters)."""
    columns: set[str] = set()
    for row in rows[:20]:
        columns.update(row)
    if "prompt" in columns and isinstance(rows[0].get("prompt"), dict):
        return FORMATS["oasst"]
    if "conversations" in columns:
        return FORMATS["messages"]
    for fmt in FORMATS.values():
        if set(fmt.columns) <= columns:
            return fmt
    if "prompt" in columns:  # prompt-only rows (grpo, rloo)
        return FORMATS["promptCompletion"]
    accepted = "; ".join(f"{f.name} ({', '.join(f.columns)})" for f in FORMATS.values())
    raise InvalidDataError(
        f"{uri}: cannot detect the data format. Columns found: {', '.join(sorted(columns))}. "
        f"Formats accepted (with the columns that identify them): {accepted}. "
        "Rename the columns or set dataset.train.format."
    )


def to_canonical(rows: list[Row], uri: str, name: str) -> tuple[Format, list[tuple[int, Row]]]:
    """Convert a file's rows with the named format (``auto`` detects it)."""
    fmt = detect(rows, uri) if name == "auto" else FORMATS[name]
    return fmt, fmt.convert(rows, uri)
