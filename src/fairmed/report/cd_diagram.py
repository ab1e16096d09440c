"""Critical-difference diagrams (Demsar 2006, Fig. 1) drawn with matplotlib alone.

A rank axis from 1 (best, left) to k; each method hangs from its average rank by an elbow line to its
name (the better half on the left, the rest on the right); the bar above the axis is the critical
difference; thick bars under the axis join methods whose ranks lie within it (not significantly
different by the Nemenyi test).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from fairmed.metrics.ranks import cliques


def draw_cd(ax: Axes, names: list[str], avg_ranks, cd: float, title: str = "") -> None:
    """Draw one CD diagram of ``names`` at ``avg_ranks`` with critical difference ``cd`` on ``ax``."""
    r = np.asarray(avg_ranks, dtype=float)
    order = np.argsort(r, kind="stable")
    r, names = r[order], [names[i] for i in order]
    k = len(r)
    low, high = 1, max(k, int(np.ceil(r.max())))
    half = (k + 1) // 2
    bars = cliques(r, cd)
    rows = max(half, k - half)
    top, step = 0.0, 1.0
    ax.set_xlim(low - 0.5 - 0.35 * (high - low), high + 0.5 + 0.35 * (high - low))
    drop = 0.4 + 0.35 * len(bars)
    ax.set_ylim(top - drop - (rows - 1) * step - 0.4, 1.6)
    ax.axis("off")
    # the rank axis, ticks every rank
    ax.plot([low, high], [top, top], color="black", linewidth=1.0)
    for t in range(low, high + 1):
        ax.plot([t, t], [top, top + 0.15], color="black", linewidth=0.8)
        ax.text(t, top + 0.25, str(t), ha="center", va="bottom", fontsize=8)
    # the critical difference, drawn from rank 1 (cut at the axis' end when wider than the axis)
    if np.isfinite(cd):
        end = low + min(cd, high - low)
        ax.plot([low, end], [1.15, 1.15], color="black", linewidth=1.6)
        ax.plot([low, low], [1.05, 1.25], color="black", linewidth=0.8)
        ax.plot([end, end], [1.05, 1.25], color="black", linewidth=0.8)
        wider = " (wider than the axis)" if cd > high - low else ""
        ax.text((low + end) / 2, 1.3, f"CD = {cd:.2f}{wider}", ha="center", va="bottom", fontsize=8)
    # cliques: thick bars just under the axis
    for j, (a, b) in enumerate(bars):
        y = top - 0.3 - 0.35 * j
        ax.plot([r[a] - 0.05, r[b] + 0.05], [y, y], color="black", linewidth=3.0, solid_capstyle="round")
    # names: the best half to the left, the rest to the right, each by an elbow line
    for i, (rank, name) in enumerate(zip(r, names)):
        left = i < half
        row = i if left else k - 1 - i
        y = top - drop - row * step
        x_end = ax.get_xlim()[0] + 0.1 if left else ax.get_xlim()[1] - 0.1
        ax.plot([rank, rank, x_end], [top, y, y], color="#444444", linewidth=0.8)
        ax.text(
            x_end,
            y + 0.08,
            f"{name} ({rank:.2f})",
            ha="left" if left else "right",
            va="bottom",
            fontsize=8,
        )
    if title:
        ax.set_title(title, fontsize=9)


__all__ = ["draw_cd"]
