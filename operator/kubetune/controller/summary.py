"""Reading the trainer's termination message (:mod:`kubetune_contract.termination`).

The pod uses ``terminationMessagePolicy: FallbackToLogsOnError``, so a trainer that
died before writing its summary (an import error, an OOM kill) leaves the tail of its
log instead: that is not JSON and is returned as plain text for the failure message.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from kubetune_contract.api.evaluation import EVALUATION_METRICS, EvaluationResult, MetricComparison
from kubetune_contract.api.status import CheckpointRecord, Result
from kubetune_contract.termination import Summary

_FIELDS = {f.name for f in dataclasses.fields(Summary)}


def parse_summary(message: str) -> Summary | None:
    """The trainer's summary, or ``None`` when the message is not one (e.g. a log tail)."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    if not isinstance(data, dict) or not {"outcome", "reason", "exitCode"} <= data.keys():
        return None
    try:
        return Summary(**{key: value for key, value in data.items() if key in _FIELDS})
    except TypeError:
        return None


def _finite(values: dict[str, Any]) -> dict[str, float]:
    """Numeric, finite metrics only (NaN/inf can't be stored in JSON status)."""
    return {
        key: float(value)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def evaluation_of(summary: Summary) -> EvaluationResult | None:
    """``status.result.evaluation`` from the summary's evaluation block (``None`` without
    numbers: no evaluation, or one that failed). Whatever the block holds, never raises."""
    block = summary.evaluation if isinstance(summary.evaluation, dict) else {}
    metrics = block.get("metrics")
    if not isinstance(metrics, dict):
        return None
    comparisons = {}
    for name, scores in metrics.items():
        values = _finite(scores) if isinstance(scores, dict) else {}
        if name in EVALUATION_METRICS and {"base", "tuned"} <= values.keys():
            base, tuned = values["base"], values["tuned"]
            comparisons[name] = MetricComparison(
                base=base, tuned=tuned, delta=round(tuned - base, 9)
            )
    if not comparisons:
        return None
    report = block.get("reportUri")
    try:
        return EvaluationResult(
            prompts=int(block.get("prompts") or 0),
            metrics=comparisons,
            headline=str(block.get("headline") or "")[:256],
            reportUri=report[:2048] if isinstance(report, str) else None,
        )
    except (TypeError, ValueError):
        return None


def result_of(summary: Summary) -> Result:
    """``status.result`` from a succeeded trainer's summary."""
    uris = summary.result or {}
    return Result(
        adapterUri=uris.get("adapterUri"),
        manifestUri=uris.get("manifestUri"),
        mergedUri=uris.get("mergedUri"),
        metrics=dict(list(_finite(summary.metrics or {}).items())[:64]),
        evaluation=evaluation_of(summary),
    )


def checkpoints_of(summary: Summary, keep: int = 16) -> list[CheckpointRecord]:
    """The newest ``keep`` checkpoints the trainer reported, oldest first."""
    records = []
    for item in summary.checkpoints or []:
        if not isinstance(item, dict) or "step" not in item or "uri" not in item:
            continue
        eval_loss = item.get("evalLoss")
        records.append(
            CheckpointRecord(
                step=int(item["step"]),
                uri=str(item["uri"]),
                evalLoss=float(eval_loss) if isinstance(eval_loss, int | float) else None,
            )
        )
    return sorted(records, key=lambda record: record.step)[-keep:]
