"""Validation scores for model selection: AUC overall and of the worst group (no sklearn at runtime).

AUC is the Mann-Whitney statistic from average ranks (ties count one half), vectorized; a
multi-class AUC is the macro mean of one-vs-rest AUCs. A set with a single class has no AUC (NaN).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + 0.5 P(tie); NaN without both classes."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Binary AUC for (n,) scores; macro one-vs-rest AUC over the present classes for (n, C)."""
    if scores.ndim == 1:
        return binary_auc(y, scores)
    values = [binary_auc(y == k, scores[:, k]) for k in range(scores.shape[1]) if (y == k).any()]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def worst_group_auc(y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Lowest AUC over groups (codes >= 0) where it is defined; NaN when no group has one."""
    values = [auc(y[groups == k], scores[groups == k]) for k in np.unique(groups[groups >= 0])]
    values = [v for v in values if not np.isnan(v)]
    return float(min(values)) if values else float("nan")
