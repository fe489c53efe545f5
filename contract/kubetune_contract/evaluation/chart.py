"""The base-against-tuned bar chart (``evaluation.png``).

Shared by the trainer (which saves it next to the adapter) and ``kubetune plot
--evaluation``, so the chart looks the same wherever it is drawn. Needs matplotlib (the
trainer extra). Metrics in [0, 1] share one panel; the reward model's score has its own
scale, so it gets a panel of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kubetune_contract.curves import save_png
from kubetune_contract.evaluation.records import LABELS, MODELS, Comparison

#: Metrics not bounded by [0, 1].
_UNBOUNDED = ("rewardScore",)
_COLOURS = {"base": "#9e9e9e", "tuned": "#1f77b4"}


def plot_comparison(comparisons: Mapping[str, Comparison], path: Path, title: str = "") -> Path:
    """Draw one pair of bars (base, tuned) per metric into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not comparisons:
        raise ValueError("no evaluation metrics to draw")
    groups = [
        [m for m in comparisons if m not in _UNBOUNDED],
        [m for m in comparisons if m in _UNBOUNDED],
    ]
    groups = [g for g in groups if g]
    widths = [max(2, len(g)) for g in groups]
    figure, axes = plt.subplots(
        1,
        len(groups),
        figsize=(1.6 * sum(widths) + 1.5, 3.6),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for axis, metrics in zip(axes[0], groups, strict=True):
        positions = range(len(metrics))
        for offset, model in zip((-0.2, 0.2), MODELS, strict=True):
            values = [getattr(comparisons[m], model) for m in metrics]
            bars = axis.bar(
                [p + offset for p in positions], values, 0.4, label=model, color=_COLOURS[model]
            )
            axis.bar_label(bars, fmt="%.2f", fontsize=8)
        axis.set_xticks(list(positions), [LABELS.get(m, m) for m in metrics], fontsize=8)
        if metrics[0] not in _UNBOUNDED:
            axis.set_ylim(0, 1.1)
        axis.axhline(0, color="black", linewidth=0.5)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=8)
    return save_png(figure, path, title)
