"""Training curves from ``metrics.jsonl`` to a PNG.

Shared by ``kubetune plot`` and the trainer (which saves the curves next to the adapter),
so a curve looks the same wherever it was drawn. Needs matplotlib (the trainer extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The key of the record the trainer writes where a run resumed from a checkpoint (its
#: value: how many resumes so far); the curves mark those steps.
RESUMES = "resumes"
#: Panels drawn, in order: (title, metrics.jsonl keys on that panel).
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loss", ("loss", "eval_loss")),
    ("learning rate", ("learning_rate",)),
    ("gradient norm", ("grad_norm",)),
)


def read_records(lines: Iterable[str]) -> list[dict[str, Any]]:
    """Parse metrics.jsonl lines, skipping blank and torn (partially written) lines."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric."""
    points = [
        (float(r["step"]), float(r[key])) for r in records if isinstance(r.get(key), int | float)
    ]
    return [s for s, _ in points], [v for _, v in points]


def plot_curves(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Draw every panel that has data into ``path`` (PNG). Raises ValueError when no
    record carries a plottable metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, keys) for name, keys in PANELS if any(series(records, k)[0] for k in keys)]
    resumed_at = [float(r["step"]) for r in records if RESUMES in r]
    if not panels:
        raise ValueError("no loss, learning rate or gradient norm in the metrics")
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), squeeze=False)
    for axis, (name, keys) in zip(axes[:, 0], panels, strict=True):
        for key in keys:
            steps, values = series(records, key)
            if steps:
                axis.plot(steps, values, marker="o" if len(steps) < 30 else None, label=key)
        for i, step in enumerate(resumed_at):
            axis.axvline(step, color="gray", linestyle=":", label="resumed" if i == 0 else None)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend()
    return save_png(figure, path, title)


def save_png(figure: Any, path: Path, title: str) -> Path:
    """Title, lay out, write and close a matplotlib figure (every chart kubetune draws)."""
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path
