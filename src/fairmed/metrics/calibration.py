"""Calibration: expected calibration error (ECE) with equal-width bins, and the reliability table.

ECE = sum_b (n_b / n) * |mean score in bin b - fraction positive in bin b|
    = sum_b |sum_{i in b} (s_i - y_i)| / n,
the second form is what the vectorized audit uses (one weighted sum per bin). Bins are
equal-width on [0, 1]: bin b holds scores in [b/B, (b+1)/B), the last bin also holds 1.0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_BINS = 10


def bin_index(scores: np.ndarray, n_bins: int = DEFAULT_BINS) -> np.ndarray:
    """Equal-width bin of each probability (0 .. n_bins-1); 1.0 falls in the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    s = np.asarray(scores, dtype=float)
    return np.minimum((s * n_bins).astype(np.int64), n_bins - 1).clip(0)


def ece(y_true, y_score, n_bins: int = DEFAULT_BINS, sample_weight=None) -> float:
    """Expected calibration error of binary probabilities (equal-width bins)."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    n = w.sum()
    if n == 0:
        return float("nan")
    gap = np.bincount(bin_index(s, n_bins), weights=w * (s - y), minlength=n_bins)
    return float(np.abs(gap).sum() / n)


def reliability_table(y_true, y_score, groups=None, n_bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """Per (group, bin): n, mean score, fraction positive; the data of a reliability diagram."""
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(y_score, dtype=float)
    g = pd.Series(["overall"] * len(s) if groups is None else np.asarray(groups, dtype=object))
    frame = pd.DataFrame({"group": g, "bin": bin_index(s, n_bins), "score": s, "y": y})
    frame = frame[frame["group"].notna()]
    out = frame.groupby(["group", "bin"], sort=True, observed=True).agg(
        n=("y", "size"), mean_score=("score", "mean"), fraction_positive=("y", "mean")
    )
    out = out.reset_index()
    out["bin_low"] = out["bin"] / n_bins
    out["bin_high"] = (out["bin"] + 1) / n_bins
    return out
