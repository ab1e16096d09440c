"""Fairness criteria as plain functions of ``(y_true, y_pred, groups)`` (fairlearn-style).

They count per-group rates with the engines (``groups.py``, ``multiclass.py``) and reduce them
with the criteria of ``criteria.py`` (the formulas and their literature are documented there).
"""

from __future__ import annotations

import numpy as np

from fairmed.metrics.criteria import binary_criteria, equal_odds_measures, multiclass_dp
from fairmed.metrics.groups import binary_metrics
from fairmed.metrics.multiclass import class_counts, rates_from_counts
from fairmed.metrics.validate import as_class_codes, as_codes, check_lengths


def _groups_rates(y_true, y_pred, groups, n_classes: int | None = None) -> dict[str, np.ndarray]:
    check_lengths(y_true=y_true, y_pred=y_pred, groups=groups)
    y = as_class_codes(y_true, n_classes)
    p = as_class_codes(y_pred, n_classes, name="y_pred")
    c = n_classes or int(max(y.max(initial=0), p.max(initial=0)) + 1)
    codes, names = as_codes(groups, len(y))
    counts = class_counts(y, p, codes, len(names), c)
    return rates_from_counts(counts)


def demographic_parity_difference(y_true, y_pred, groups) -> float:
    """max - min over groups of the selection rate P(y_pred = 1 | group)."""
    return float(binary_criteria(_binary_table(y_true, y_pred, groups))["demographic_parity"])


def equal_opportunity_difference(y_true, y_pred, groups) -> float:
    """max - min over groups of the TPR."""
    return float(binary_criteria(_binary_table(y_true, y_pred, groups))["equal_opportunity"])


def equalized_odds_difference(y_true, y_pred, groups) -> float:
    """max of the TPR and FPR differences across groups (fairlearn's definition)."""
    return float(binary_criteria(_binary_table(y_true, y_pred, groups))["equalized_odds"])


def accuracy_parity_difference(y_true, y_pred, groups) -> float:
    """max - min over groups of the accuracy."""
    return float(binary_criteria(_binary_table(y_true, y_pred, groups))["accuracy_parity"])


def _binary_table(y_true, y_pred, groups) -> dict[str, np.ndarray]:
    frame = binary_metrics(y_true, None, groups, y_pred=y_pred)
    return {c: frame[c].to_numpy(dtype=float) for c in frame.columns}


def eopp0(y_true, y_pred, groups, n_classes: int | None = None, signed: bool = False) -> float:
    """mean_c |TNR_a,c - TNR_b,c| (worst pair); signed: no absolute value, two groups only."""
    return _eo(y_true, y_pred, groups, n_classes, "eopp0", signed)


def eopp1(y_true, y_pred, groups, n_classes: int | None = None, signed: bool = False) -> float:
    """mean_c |TPR_a,c - TPR_b,c| (worst pair); signed: no absolute value, two groups only."""
    return _eo(y_true, y_pred, groups, n_classes, "eopp1", signed)


def eodd(y_true, y_pred, groups, n_classes: int | None = None, signed: bool = False) -> float:
    """mean_c |dTPR_c + dFPR_c| / 2 (worst pair); signed: no absolute value, two groups only."""
    return _eo(y_true, y_pred, groups, n_classes, "eodd", signed)


def _eo(y_true, y_pred, groups, n_classes, name: str, signed: bool) -> float:
    rates = _groups_rates(y_true, y_pred, groups, n_classes)
    if n_classes is None and rates["tpr"].shape[-1] == 2:
        rates = {k: v[..., 1:] for k, v in rates.items()}  # binary: the positive class only
    out = equal_odds_measures(rates)
    key = f"{name}_signed" if signed else name
    if key not in out:
        raise ValueError(f"{key} needs exactly two groups, got {rates['tpr'].shape[-2]}")
    return float(np.asarray(out[key]).reshape(-1)[0])


def multiclass_demographic_parity(y_true, y_pred, groups, n_classes: int | None = None) -> float:
    """sum_c |P(pred = c | a) - P(pred = c | b)| for the worst pair of groups."""
    rates = _groups_rates(y_true, y_pred, groups, n_classes)
    return float(multiclass_dp(rates["pred_rate"]).reshape(-1)[0])
