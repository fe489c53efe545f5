"""Data formats, auto-detection, method shapes, splits and bad-row messages (no training)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kubetune_contract.api.dataset import DatasetSpec
from kubetune_trainer.data import prepare
from kubetune_trainer.data.formats import FORMATS
from kubetune_trainer.errors import InvalidDataError
from tests.trainer.helpers import CHAT_ROWS, PREFERENCE_ROWS, write_jsonl


def dataset(uri: str, fmt: str = "auto", **extra: Any) -> DatasetSpec:
    return DatasetSpec.model_validate({"train": {"uri": uri, "format": fmt}, **extra})


def rows_of(
    tmp_path: Path, rows: list[dict[str, Any]], method: str = "sft", fmt: str = "auto"
) -> list[dict[str, Any]]:
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    return list(prepare(dataset(f"file://{path}", fmt), method, seed=0).train)


USER = [{"role": "user", "content": "Say hi"}]
ASSISTANT = [{"role": "assistant", "content": "hi"}]

# (format, one row, the method it feeds, the expected TRL row)
CASES: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    ("messages", {"messages": USER + ASSISTANT}, "sft", {"messages": USER + ASSISTANT}),
    (
        "messages",
        {"conversations": [{"from": "human", "value": "Say hi"}, {"from": "gpt", "value": "hi"}]},
        "sft",
        {"messages": USER + ASSISTANT},
    ),
    (
        "promptCompletion",
        {"prompt": "2+2=", "completion": "4"},
        "sft",
        {"prompt": "2+2=", "completion": "4"},
    ),
    (
        "preference",
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},
        "dpo",
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},
    ),
    (
        "unpairedPreference",
        {"prompt": "Q", "completion": "good", "label": "true"},
        "kto",
        {"prompt": "Q", "completion": "good", "label": True},
    ),
    ("text", {"text": "Once upon a time."}, "sft", {"text": "Once upon a time."}),
    (
        "alpaca",
        {"instruction": "Add", "input": "2 and 3", "output": "5"},
        "sft",
        {
            "prompt": [{"role": "user", "content": "Add\n\n2 and 3"}],
            "completion": [{"role": "assistant", "content": "5"}],
        },
    ),
    (
        "dolly",
        {
            "instruction": "Summarise",
            "context": "A long text.",
            "response": "Short.",
            "category": "summarization",
        },
        "sft",
        {
            "prompt": [{"role": "user", "content": "Summarise\n\nContext:\nA long text."}],
            "completion": [{"role": "assistant", "content": "Short."}],
        },
    ),
]


@pytest.mark.parametrize(
    ("fmt", "row", "method", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "auto"])
def test_each_format_converts_to_the_trl_shape(
    tmp_path: Path,
    fmt: str,
    row: dict[str, Any],
    method: str,
    expected: dict[str, Any],
    declared: bool,
) -> None:
    assert rows_of(tmp_path, [row], method, fmt if declared else "auto") == [expected]


def test_oasst_flat_messages_become_one_conversation_per_leaf(tmp_path: Path) -> None:
    tree: list[dict[str, Any]] = [
        {"message_id": "a", "parent_id": None, "role": "prompter", "text": "Hello?"},
        {"message_id": "b", "parent_id": "a", "role": "assistant", "text": "Hi!"},
        {"message_id": "c", "parent_id": "a", "role": "assistant", "text": "Hey."},
        {"message_id": "d", "parent_id": "c", "role": "prompter", "text": "How are you?"},
        {"message_id": "e", "parent_id": "c", "role": "prompter", "text": "x", "deleted": True},
    ]
    conversations = [r["messages"] for r in rows_of(tmp_path, tree)]
    assert conversations == [
        [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hi!"}],
        # The trailing user turn has no answer to learn from, so it is cut.
        [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hey."}],
    ]


def test_oasst_nested_tree_export(tmp_path: Path) -> None:
    tree = {
        "message_tree_id": "t",
        "prompt": {
            "message_id": "a",
            "role": "prompter",
            "text": "Q1",
            "replies": [
                {
                    "message_id": "b",
                    "role": "assistant",
                    "text": "A1",
                    "replies": [
                        {
                            "message_id": "c",
                            "role": "prompter",
                            "text": "Q2",
                            "replies": [{"message_id": "d", "role": "assistant", "text": "A2"}],
                        }
                    ],
                }
            ],
        },
    }
    path = tmp_path / "trees.json"
    path.write_text(json.dumps([tree]))
    rows = list(prepare(dataset(f"file://{path}", "oasst"), "sft", 0).train)
    assert [m["content"] for m in rows[0]["messages"]] == ["Q1", "A1", "Q2", "A2"]


def test_code_functions_from_a_python_file(tmp_path: Path) -> None:
    source = tmp_path / "lib.py"
    source.write_text(
        'def double(x: int) -> int:\n    """Return twice x."""\n    return 2 * x\n\n'
        "def undocumented():\n    return 1\n"
    )
    rows = list(prepare(dataset(f"file://{source}", "codeFunctions"), "sft", 0).train)
    assert len(rows) == 1
    assert rows[0]["prompt"][0]["content"] == (
        "Write a Python function `def double(x: int) -> int`.\n\nReturn twice x."
    )
    assert rows[0]["completion"][0]["content"].startswith("def double(x: int) -> int:")


def test_csv_parquet_and_json_files_read_like_jsonl(tmp_path: Path) -> None:
    records = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(3)]
    with (tmp_path / "d.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["prompt", "completion"])
        writer.writeheader()
        writer.writerows(records)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(records))
    for name in ("d.csv", "d.parquet", "d.json"):
        assert list(prepare(dataset(f"file://{tmp_path / name}"), "sft", 0).train) == records


def test_a_folder_reads_every_data_file_and_reports_each(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", CHAT_ROWS[:3])
    write_jsonl(tmp_path / "b.jsonl", CHAT_ROWS[3:5])
    prepared = prepare(dataset(f"file://{tmp_path}"), "sft", 0)
    assert [(Path(f.uri).name, f.rows, f.format) for f in prepared.report.files] == [
        ("a.jsonl", 3, "messages"),
        ("b.jsonl", 2, "messages"),
    ]
    assert len(prepared.report.files[0].sha256) == 64
    assert prepared.report.trainRows == 5


def test_validation_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", CHAT_ROWS)
    spec = dataset(f"file://{path}", validationSplit="0.25")
    first, second = prepare(spec, "sft", seed=3), prepare(spec, "sft", seed=3)
    assert (first.report.trainRows, first.report.evalRows) == (6, 2)
    assert first.eval is not None and second.eval is not None
    assert list(first.eval) == list(second.eval)
    questions = {r["messages"][0]["content"] for r in first.train}
    assert not questions & {r["messages"][0]["content"] for r in first.eval}


def test_kto_splits_preference_pairs_into_labelled_rows(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, PREFERENCE_ROWS[:1], "kto")
    assert rows == [
        {"prompt": "What is 0 plus 1?", "completion": " 1.", "label": True},
        {"prompt": "What is 0 plus 1?", "completion": " 7.", "label": False},
    ]


def test_online_methods_keep_reference_columns_for_rewards(tmp_path: Path) -> None:
    rows = rows_of(tmp_path, [{"prompt": "2+2=", "answer": "4", "source": "x"}], "grpo")
    assert rows == [{"prompt": "2+2=", "answer": "4", "source": "x"}]
    chat = rows_of(tmp_path, CHAT_ROWS[:1], "grpo")
    assert chat == [{"prompt": CHAT_ROWS[0]["messages"][:1], "completion": "1 plus 1 is 2."}]


def test_auto_detection_failure_lists_columns_and_formats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "reply": "r"}])
    with pytest.raises(InvalidDataError) as caught:
        prepare(dataset(f"file://{path}"), "sft", 0)
    message = str(caught.value)
    assert "Columns found: question, reply" in message
    for name in FORMATS:
        assert name in message


BAD_ROWS = [
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages", "has role 'robot'"),
    (
        {"messages": [{"role": "user", "content": "only a question"}]},
        "messages",
        "no assistant message",
    ),
    ({"prompt": "p", "completion": 7}, "promptCompletion", "'completion' must be a string"),
    ({"instruction": "", "output": "o"}, "alpaca", "'instruction' is missing or empty"),
    (
        {"prompt": "p", "completion": "c", "label": "maybe"},
        "unpairedPreference",
        "must be true or false",
    ),
]


@pytest.mark.parametrize(("bad", "fmt", "problem"), BAD_ROWS)
def test_bad_row_error_names_file_row_and_problem(
    tmp_path: Path, bad: dict[str, Any], fmt: str, problem: str
) -> None:
    good = {"messages": USER + ASSISTANT} if fmt == "messages" else None
    rows = [good or bad, good or bad, bad]
    method = "kto" if fmt == "unpairedPreference" else "sft"
    with pytest.raises(InvalidDataError) as caught:
        rows_of(tmp_path, rows, method, fmt)
    message = str(caught.value)
    assert "d.jsonl" in message and problem in message
    assert "row 3" in message if good else "row 1" in message


def test_invalid_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "fine"}\n{"text": broken}\n')
    with pytest.raises(InvalidDataError, match=r"d\.jsonl, line 2: invalid JSON"):
        prepare(dataset(f"file://{path}"), "sft", 0)


def test_a_format_the_method_cannot_train_on_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", CHAT_ROWS)
    with pytest.raises(InvalidDataError, match="method dpo trains on preference rows"):
        prepare(dataset(f"file://{path}"), "dpo", 0)
