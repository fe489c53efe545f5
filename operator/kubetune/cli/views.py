"""How FineTuneJobs look in the terminal: pure functions over the status dict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubetune_contract.api.display import eta_text


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    if not timestamp:
        return "-"
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(int((now - created).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def eta(seconds: float | None) -> str:
    """The ETA as ``kubectl get ftj`` shows it (1h02m, 4m, 12s); '-' when unknown."""
    return "-" if seconds is None else eta_text(int(seconds))


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, int | float) else "-"


def steps(progress: dict[str, Any]) -> str:
    """'120/500 (24%)', or '-' before training reports."""
    if not progress:
        return "-"
    total = progress.get("totalSteps")
    done = progress.get("step", 0)
    if not total:
        return str(done)
    return f"{done}/{total} ({progress.get('percent', done * 100 // total)}%)"


#: How each ``EvaluationPassed`` reason reads next to the headline numbers.
_EVALUATION_VERDICTS = {"GatePassed": " (gate passed)", "GateFailed": " (gate failed)"}


def evaluation(status: dict[str, Any]) -> str:
    """``exact match 0.21 → 0.64 (gate passed)``; the reason while there are no numbers
    (Pending, EvaluationFailed); '-' for jobs without spec.evaluation."""
    condition = next(
        (c for c in status.get("conditions", []) if c.get("type") == "EvaluationPassed"), None
    )
    if condition is None:
        return "-"
    headline = ((status.get("result") or {}).get("evaluation") or {}).get("headline")
    if not headline:
        return str(condition.get("reason") or "-")
    return headline + _EVALUATION_VERDICTS.get(str(condition.get("reason")), "")


def job_row(job: dict[str, Any], now: datetime, with_namespace: bool) -> list[str]:
    """One line of ``kubetune get``."""
    status = job.get("status") or {}
    progress = status.get("progress") or {}
    row = [
        job["metadata"]["name"],
        status.get("state") or "Pending",
        job["spec"]["method"],
        steps(progress),
        _number(progress.get("loss")),
        _number(progress.get("evalLoss")),
        eta(progress.get("etaSeconds")),
        evaluation(status),
        age(job["metadata"].get("creationTimestamp"), now),
    ]
    return [job["metadata"].get("namespace", ""), *row] if with_namespace else row


HEADERS = ["NAME", "STATE", "METHOD", "STEPS", "LOSS", "EVAL LOSS", "ETA", "EVALUATION", "AGE"]


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by three spaces, like kubectl."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [headers, *rows]
    ]
    return "\n".join(lines)


def progress_line(job: dict[str, Any], width: int = 30) -> str:
    """``kubetune watch``'s line: a bar, step, loss, eval loss, tokens/s and ETA."""
    status = job.get("status") or {}
    progress = status.get("progress") or {}
    state = status.get("state") or "Pending"
    total, done = progress.get("totalSteps"), progress.get("step", 0)
    filled = int(width * done / total) if total else 0
    bar = "#" * filled + "-" * (width - filled)
    parts = [
        f"{state:<9}",
        f"[{bar}]",
        steps(progress),
        f"loss {_number(progress.get('loss'))}",
        f"eval {_number(progress.get('evalLoss'))}",
        f"{_number(progress.get('tokensPerSecond'), 5)} tok/s",
        f"ETA {eta(progress.get('etaSeconds'))}",
    ]
    return "  ".join(parts)


#: The condition that explains each final state: (type, status).
_EXPLAINING_CONDITION = {
    "Succeeded": ("Succeeded", "True"),
    "Failed": ("Failed", "True"),
    "Invalid": ("Accepted", "False"),
}


def final_message(job: dict[str, Any]) -> str:
    """What ``kubetune watch`` prints when the job ends: the outcome and where results are."""
    status = job.get("status") or {}
    state = status.get("state") or "Pending"
    wanted = _EXPLAINING_CONDITION.get(state)
    reason = next(
        (
            f" ({c.get('reason')}: {c.get('message', '')})"
            for c in status.get("conditions", [])
            if (c.get("type"), c.get("status")) == wanted
        ),
        "",
    )
    lines = [f"{job['metadata']['name']}: {state}{reason}"]
    lines += [f"  {k}: {v}" for k, v in (status.get("result") or {}).items() if isinstance(v, str)]
    if (verdict := evaluation(status)) != "-":
        lines.append(f"  evaluation: {verdict}")
    return "\n".join(lines)


def now_utc() -> datetime:
    return datetime.now(UTC)
