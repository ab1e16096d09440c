"""DeLong's test of the AUC difference between two independent groups (one run tests its own gap).

DeLong, DeLong & Clarke-Pearson (1988) estimate an AUC's variance from its structural components:
for each positive, the share of negatives it outranks (V10), for each negative the share of
positives that outrank it (V01), ties counting one half. Then

    var(AUC) = s2(V10) / n_pos + s2(V01) / n_neg

with s2 the sample variance (denominator n - 1). Two groups of a run hold different images, so
their AUCs are independent and ``z = (AUC_1 - AUC_2) / sqrt(var_1 + var_2)`` (pROC's unpaired
``roc.test(method="delong")``). The unit of replication is the image within each group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True)
class DelongResult:
    """AUCs of the two groups, their difference (first minus second), its standard error, z and p."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    z: float
    p_value: float


def _midranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata  # lazily: scipy.stats is slow to import

    return rankdata(x)


def auc_variance(y_true, y_score) -> tuple[float, float]:
    """(AUC, DeLong variance) of one group; NaN when a class is missing (or has one sample only)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=float)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return math.nan, math.nan
    # V10_i = (rank of pos_i among all - rank among positives) / n, by mid-ranks (ties count 1/2)
    all_ranks = _midranks(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - _midranks(pos)) / n
    v01 = 1 - (all_ranks[m:] - _midranks(neg)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, math.nan
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def delong_test(y_a, score_a, y_b, score_b) -> DelongResult:
    """Two-sided DeLong test of H0: AUC_a == AUC_b for two independent groups."""
    auc_a, var_a = auc_variance(y_a, score_a)
    auc_b, var_b = auc_variance(y_b, score_b)
    diff = auc_a - auc_b
    se = math.sqrt(var_a + var_b) if not (math.isnan(var_a) or math.isnan(var_b)) else math.nan
    if math.isnan(se):
        return DelongResult(auc_a, auc_b, diff, se, math.nan, math.nan)
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return DelongResult(auc_a, auc_b, diff, se, z, float(2 * special.ndtr(-abs(z))))
