"""Evaluation scores without a model: per-example metrics, means, the gate, the headline."""

from __future__ import annotations

import pytest

from kubetune_contract.api.evaluation import EvaluationSpec, GateThreshold
from kubetune_contract.evaluation.records import (
    Comparison,
    aggregate,
    check_gate,
    headline,
    metrics_of,
)
from kubetune_trainer.data.formats import RowProblem
from kubetune_trainer.evaluation import scoring
from kubetune_trainer.evaluation.examples import example_of

ANSWERS = ["Paris", "The capital is Paris.", "paris!", "Lyon", ""]
REFERENCES = ["Paris", "Paris", "Paris", "Paris", "Paris"]


def scores(*metrics: str, pattern: str | None = None) -> dict[str, list[float]]:
    spec = EvaluationSpec(metrics=list(metrics), pattern=pattern)
    return {m: f(ANSWERS, REFERENCES) for m, f in scoring.text_metrics(spec).items()}


def test_text_metrics_per_example() -> None:
    found = scores(
        "exactMatch",
        "normalizedExactMatch",
        "contains",
        "regexMatch",
        "tokenF1",
        pattern=r"^[A-Z]",
    )
    assert found["exactMatch"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert found["normalizedExactMatch"] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert found["contains"] == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert found["regexMatch"] == [1.0, 1.0, 0.0, 1.0, 0.0]
    # "capital is paris" (articles dropped) against "paris": precision 1/3, recall 1.
    assert found["tokenF1"] == pytest.approx([1.0, 0.5, 1.0, 0.0, 0.0])


def test_contains_matches_whole_words_only() -> None:
    assert scoring.contains(["Parisian food"], ["Paris"]) == [0.0]
    assert scoring.contains(["It is the sky blue."], ["sky blue"]) == [1.0]


def test_rouge_l_is_the_lcs_f_measure() -> None:
    found = scoring.rouge_l(["the cat sat", "", "a b c d"], ["the cat sat on the mat", "x", "a c"])
    # LCS 3 of 3 and 6 tokens: P 1, R 0.5, F 2/3; empty answer 0; LCS "a c": P 0.5, R 1.
    assert found == pytest.approx([2 / 3, 0.0, 2 / 3], abs=1e-4)


def test_win_rate_counts_ties_half() -> None:
    assert scoring.win_rates([1.0, 0.2, 0.5], [0.0, 0.9, 0.5]) == [1.0, 0.0, 0.5]


def test_means_gate_and_headline() -> None:
    records = [
        {
            "base": {"scores": {"exactMatch": 0.0, "rougeL": 0.2}},
            "tuned": {"scores": {"exactMatch": float(i < 3), "rougeL": 0.5}},
        }
        for i in range(4)
    ]
    means = aggregate(records, metrics_of(records))
    assert means["exactMatch"] == Comparison(0.0, 0.75)
    assert means["rougeL"].delta == pytest.approx(0.3)
    assert headline(means, "exactMatch") == "exact match 0.00 → 0.75"
    gate = check_gate(
        [
            GateThreshold(metric="exactMatch", minDelta="0.75"),
            GateThreshold(metric="rougeL", minDelta="-0.1", min="0.6"),
        ],
        means,
    )
    assert not gate.passed
    assert gate.met("exactMatch") and not gate.met("rougeL")
    assert gate.failures == ["rougeL: tuned 0.5 is below the minimum 0.6"]
    assert [c.met for c in gate.checks] == [True, True, False]
    assert check_gate([GateThreshold(metric="rougeL", min="0.5")], means).passed


def test_a_float_sum_does_not_fail_an_exactly_met_bar() -> None:
    means = {"tokenF1": Comparison(0.1, 0.15)}
    assert check_gate([GateThreshold(metric="tokenF1", minDelta="0.05")], means).passed


def test_no_records_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no evaluation records"):
        aggregate([], ["exactMatch"])


@pytest.mark.parametrize(
    ("row", "prompt", "reference"),
    [
        ({"prompt": "Q?", "completion": "A."}, "Q?", "A."),
        (
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Q?"},
                    {"role": "assistant", "content": "A."},
                ]
            },
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}],
            "A.",
        ),
        ({"prompt": "Q?", "chosen": " yes", "rejected": " no"}, "Q?", "yes"),
        (
            {
                "prompt": [{"role": "user", "content": "Q?"}],
                "completion": [{"role": "assistant", "content": "A."}],
            },
            [{"role": "user", "content": "Q?"}],
            "A.",
        ),
    ],
)
def test_where_prompt_and_reference_come_from(row: dict, prompt: object, reference: str) -> None:
    example = example_of(row, row, EvaluationSpec(), "row 1")
    assert example is not None
    assert (example.prompt, example.reference) == (prompt, reference)


def test_reference_column_and_rows_without_a_reference() -> None:
    spec = EvaluationSpec(referenceColumn="answer")
    example = example_of({"prompt": "2+2?"}, {"prompt": "2+2?", "answer": 4}, spec, "row 1")
    assert example is not None and example.reference == "4"
    assert example_of({"prompt": "Q", "completion": "A", "label": False}, {}, spec, "r") is None
    with pytest.raises(RowProblem, match="referenceColumn 'answer'"):
        example_of({"prompt": "Q"}, {"prompt": "Q"}, spec, "row 2")
    with pytest.raises(RowProblem, match="no reference answer"):
        example_of({"prompt": "Q"}, {"prompt": "Q"}, EvaluationSpec(), "row 3")
    with pytest.raises(RowProblem, match="no prompt to answer"):
        example_of({"text": "just text"}, {"text": "just text"}, EvaluationSpec(), "row 4")
