"""ROC counts and vertices: one sort, one point per distinct score (ties handled).

Every ROC-shaped computation in fairmed uses these: the audit's threshold rules
(:func:`fairmed.metrics.groups.choose_threshold`), the per-group ROC hulls of the
post-processing thresholds (:mod:`fairmed.mitigate.thresholds`) and the report's ROC curves.
"""

from __future__ import annotations

import numpy as np


def roc_counts(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, thresholds): the true and false positives of ``score >= t`` for every distinct score t,
    by decreasing t (the last threshold, the lowest score, counts every sample as positive)."""
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    s, yy = s[order], np.asarray(y, dtype=float)[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True] if len(s) else np.zeros(0, dtype=bool)
    return np.cumsum(yy)[last_of_tie], np.cumsum(1 - yy)[last_of_tie], s[last_of_tie]


def roc_vertices(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points of ``score >= t`` for every distinct score t, plus (0,0) and (1,1).

    Returns (fpr, tpr, thresholds) ordered by increasing FPR; the first threshold is +inf
    (never positive) and the last -inf (always positive). A class that is absent counts as one
    sample (rates 0 instead of NaN).
    """
    tp, fp, s = roc_counts(scores, y)
    n_pos = max(float(tp[-1]) if len(tp) else 0.0, 1.0)
    n_neg = max(float(fp[-1]) if len(fp) else 0.0, 1.0)
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, s]
    fpr[-1], tpr[-1], thresholds[-1] = 1.0, 1.0, -np.inf
    return fpr, tpr, thresholds
