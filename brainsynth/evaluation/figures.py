"""Evaluation figures (matplotlib, imported here only)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from brainsynth.atomic import atomic_write_bytes


def save_scatter(
    requested: Sequence[float],
    measured: Sequence[float],
    path: str | Path,
    *,
    label: str,
    title: str = "",
    real: Sequence[float] | None = None,
) -> Path:
    """Scatter plot of measured against requested values with the identity line.

    ``real``, when given, holds the same segmenter's measurements of the real images whose recorded
    values were requested; they are drawn as a second series.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.2, 4.0))
    values = [*requested, *measured, *(real or [])]
    low, high = min(values), max(values)
    axis.plot([low, high], [low, high], color="0.6", linewidth=1, label="identity")
    if real:
        axis.scatter(requested, real, s=18, marker="x", color="tab:orange", label="real images")
    axis.scatter(requested, measured, s=18, color="tab:blue", label="samples")
    axis.set_xlabel(f"requested {label.lower()} (ml)")
    axis.set_ylabel(f"measured {label.lower()} (ml)")
    axis.set_title(title, fontsize=9)
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
