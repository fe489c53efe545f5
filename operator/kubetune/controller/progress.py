"""Training progress from the trainer's Prometheus endpoint (rank 0), with an ETA.

Only the rank-0 pod is read: every rank reports the same step, and one small request
per running job per interval keeps the operator's traffic flat. A trainer that isn't
serving yet (loading the model), a network policy, or a pod IP that can't be reached
from the operator is normal, so failures return ``None`` and are not logged as errors.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from kubetune.api.status import Progress
from kubetune_trainer.metrics import PREFIX

#: Bytes read from the endpoint at most: a trainer's page is ~2 KiB; anything far
#: larger is not ours.
_MAX_BYTES = 256 * 1024


def parse_metrics(text: str) -> dict[str, float]:
    """``kubetune_trainer_*`` samples (prefix removed) from a Prometheus text page."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                found[sample.name[len(PREFIX) :]] = float(sample.value)
    return found


def scrape(url: str, timeout: float = 2.0) -> dict[str, float] | None:
    """The trainer's samples at ``url``; ``None`` when unreachable or not a metrics page."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return parse_metrics(response.read(_MAX_BYTES).decode("utf-8", "replace"))
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _eta_seconds(
    step: int, total: int | None, now: datetime, previous: Progress | None, started: datetime | None
) -> int | None:
    """Seconds to the last step at the recent rate (since the last sample), falling back
    to the average rate since the start."""
    if not total or step <= 0:
        return None
    if step >= total:
        return 0
    rate: float | None = None
    if previous and previous.updatedAt and step > previous.step:
        elapsed = (now - previous.updatedAt).total_seconds()
        rate = (step - previous.step) / elapsed if elapsed > 0 else None
    if rate is None and started is not None:
        elapsed = (now - started).total_seconds()
        rate = step / elapsed if elapsed > 0 else None
    return round((total - step) / rate) if rate else None


def _reported(samples: Mapping[str, float], name: str) -> float | None:
    """A gauge's value, ``None`` while it still holds its initial 0 (not reported yet)."""
    value = samples.get(name)
    return value if value else None


def progress_from_samples(
    samples: Mapping[str, float],
    *,
    now: datetime,
    previous: Progress | None,
    started: datetime | None,
) -> Progress | None:
    """``status.progress`` from the trainer's samples; ``None`` without a step gauge."""
    if "step" not in samples:
        return None
    step = max(0, int(samples["step"]))
    total = int(samples.get("total_steps", 0)) or None
    return Progress(
        step=step,
        totalSteps=total,
        percent=min(100, step * 100 // total) if total else None,
        epoch=samples.get("epoch"),
        loss=_reported(samples, "loss"),
        evalLoss=_reported(samples, "eval_loss"),
        tokensPerSecond=_reported(samples, "tokens_per_second"),
        etaSeconds=_eta_seconds(step, total, now, previous, started),
        updatedAt=now,
    )
