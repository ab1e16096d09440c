"""Validation scores for model selection: AUC overall and of the worst group (no sklearn at runtime).

The AUC is the audit's (``fairmed.metrics.groups.group_auc``: the Mann-Whitney statistic with
mid-ranks for ties), so model selection and the audit agree; a multi-class AUC is the macro mean
of one-vs-rest AUCs. A set with a single class has no AUC (NaN).
"""

from __future__ import annotations

import numpy as np

from fairmed.metrics.groups import group_auc


def _aucs(y: np.ndarray, scores: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """Per group (G,): binary AUC for (n,) scores; macro one-vs-rest over present classes for (n, C)."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        return group_auc(y.astype(bool), scores, codes)
    per_class = np.array([group_auc(y == k, scores[:, k], codes) for k in range(scores.shape[1])])
    with np.errstate(all="ignore"):
        defined = ~np.isnan(per_class)
        total = np.where(defined, per_class, 0.0).sum(0)
        count = defined.sum(0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def binary_auc(y: np.ndarray, score: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + 0.5 P(tie); NaN without both classes."""
    return float(group_auc(np.asarray(y).astype(bool), np.asarray(score, dtype=float))[0])


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Binary AUC for (n,) scores; macro one-vs-rest AUC over the present classes for (n, C)."""
    return float(_aucs(y, scores, None)[0])


def worst_group_auc(y: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Lowest AUC over groups (codes >= 0) where it is defined; NaN when no group has one."""
    values = _aucs(y, scores, np.asarray(groups))
    values = values[~np.isnan(values)]
    return float(values.min()) if len(values) else float("nan")
