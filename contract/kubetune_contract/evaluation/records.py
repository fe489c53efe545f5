"""Per-example evaluation records, their means, the gate and the headline.

One record per prompt, as written to ``evaluation.jsonl`` next to the adapter::

    {"index": 0, "source": "file:///data/eval.jsonl, row 1",
     "prompt": "What colour is snow?", "reference": "white",
     "base": {"answer": "...", "scores": {"exactMatch": 0.0, "tokenF1": 0.2}},
     "tuned": {"answer": "white", "scores": {"exactMatch": 1.0, "tokenF1": 1.0}}}

Every number the job reports (status, manifest, report, gauges) is the mean of these
per-example scores, computed by :func:`aggregate` alone, so the report can always be
checked against the examples a person reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubetune_contract.api.evaluation import GateThreshold

#: Files written next to the adapter (``output.uri``).
REPORT_FILE = "evaluation.md"
CHART_FILE = "evaluation.png"
EXAMPLES_FILE = "evaluation.jsonl"

#: The two models compared, in the order they are shown.
MODELS = ("base", "tuned")

#: How metrics are named for people (events, report, chart).
LABELS: dict[str, str] = {
    "exactMatch": "exact match",
    "normalizedExactMatch": "normalized exact match",
    "contains": "contains",
    "regexMatch": "regex match",
    "tokenF1": "token F1",
    "rougeL": "ROUGE-L",
    "rewardScore": "reward score",
    "winRate": "win rate",
}

#: Comparisons allow for float rounding: 0.1 + 0.05 must not fail a tuned score of 0.15.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Comparison:
    """One metric's mean over the same prompts, for both models."""

    base: float
    tuned: float

    @property
    def delta(self) -> float:
        return self.tuned - self.base


def aggregate(
    records: Sequence[Mapping[str, Any]], metrics: Sequence[str]
) -> dict[str, Comparison]:
    """The mean of every metric's per-example scores, base and tuned."""
    if not records:
        raise ValueError("no evaluation records to aggregate")

    def mean(model: str, metric: str) -> float:
        return sum(float(r[model]["scores"][metric]) for r in records) / len(records)

    return {m: Comparison(mean("base", m), mean("tuned", m)) for m in metrics}


def read_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse ``evaluation.jsonl`` lines (blank lines skipped)."""
    return [json.loads(line) for line in lines if line.strip()]


def metrics_of(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The metrics the records were scored with, in the order they were written."""
    return list(records[0]["tuned"]["scores"]) if records else []


def headline(comparisons: Mapping[str, Comparison], metric: str) -> str:
    """``exact match 0.21 → 0.64``: one metric, base then tuned."""
    score = comparisons[metric]
    return f"{LABELS.get(metric, metric)} {score.base:.2f} → {score.tuned:.2f}"


def headline_metric(metrics: Sequence[str], gate: Sequence[GateThreshold]) -> str:
    """The metric a person looks at first: the first one gated, else the first listed."""
    return gate[0].metric if gate else metrics[0]


@dataclass(frozen=True)
class GateCheck:
    """One threshold held against the tuned model's score."""

    metric: str
    met: bool
    sentence: str
    """``exactMatch: tuned 0.64 >= base 0.21 + 0.05`` (or ``is below``)."""


@dataclass
class GateOutcome:
    """Whether every threshold of ``spec.evaluation.gate`` was met, and what was checked."""

    checks: list[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.met for check in self.checks)

    @property
    def failures(self) -> list[str]:
        return [check.sentence for check in self.checks if not check.met]

    def met(self, metric: str) -> bool:
        """Whether every threshold on ``metric`` was met."""
        return all(check.met for check in self.checks if check.metric == metric)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [c.sentence for c in self.checks],
            "failures": self.failures,
        }


def check_gate(gate: Sequence[GateThreshold], comparisons: Mapping[str, Comparison]) -> GateOutcome:
    """Hold the tuned model to every threshold (tuned >= base + minDelta, tuned >= min)."""
    outcome = GateOutcome()
    for threshold in gate:
        score = comparisons[threshold.metric]
        bars: list[tuple[float, str]] = []
        if threshold.minDelta is not None:
            bars.append(
                (
                    score.base + float(threshold.minDelta),
                    f"base {score.base:.4g} + {threshold.minDelta}",
                )
            )
        if threshold.min is not None:
            bars.append((float(threshold.min), f"the minimum {threshold.min}"))
        for bar, what in bars:
            met = score.tuned >= bar - _TOLERANCE
            relation = ">=" if met else "is below"
            sentence = f"{threshold.metric}: tuned {score.tuned:.4g} {relation} {what}"
            outcome.checks.append(GateCheck(threshold.metric, met, sentence))
    return outcome
