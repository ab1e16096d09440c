"""Fairness criteria and gaps: how unequal per-group metrics are, in the forms the literature uses.

Gap forms of a per-group metric m_g over the groups with a defined value (all vectorized over a
leading replicate axis; NaN when fewer than two groups are defined):

- ``difference``: max_g m_g - min_g m_g (fairlearn's ``difference()``; the criteria below); its
  bootstrap interval is biased upward (max - min of noisy values exceeds the true gap, and is
  never below 0, so the interval excludes 0 even when there is no gap): it describes, it does not
  test (the audit's permutation ``p_value`` does);
- ``signed`` (exactly two groups): m_first - m_second in the grouping's order; unbiased, its
  bootstrap interval contains 0 at the nominal rate when there is no gap;
- ``ratio``: min_g m_g / max_g m_g (fairlearn's ``ratio()``; the four-fifths rule);
- ``worst``: the worst group's value (max-min fairness): min for higher-is-better metrics, max
  for lower-is-better ones; absent for descriptive metrics (prevalence, selection rate);
- ``std``: population standard deviation across groups;
- ``ser``: skewed error ratio, max_g e_g / min_g e_g of the error e = 1 - m (higher-is-better
  metrics in [0, 1]) or e = m (lower-is-better metrics).

Criteria (review paper's table), each the largest between-group difference:
demographic parity (selection rate), accuracy parity (accuracy), equal opportunity (TPR),
equalized odds (max of the TPR and FPR differences, as fairlearn's ``equalized_odds_difference``).

Eopp0 / Eopp1 / Eodd (FairPrune, the channel-pruning paper), one-vs-rest per class c between
groups a and b, averaged over the C classes:
  Eopp0 = mean_c |TNR_a,c - TNR_b,c|,  Eopp1 = mean_c |TPR_a,c - TPR_b,c|,
  Eodd  = mean_c |(TPR_a,c - TPR_b,c) + (FPR_a,c - FPR_b,c)| / 2.
For a binary task the mean runs over the positive class only (C = 1 term). With more than two
groups the worst pair is reported. The signed forms (no absolute value, a = first group, b =
second) exist for exactly two groups. A class absent from a group contributes a rate of 0 (the
zero-division rule of scikit-learn's precision/recall). Multi-class demographic parity is
sum_c |rate_a,c - rate_b,c| of the predicted-class rates (worst pair).

A leaf: everything here is a function of per-group rates (arrays with a group axis), so the
engines (``groups.py``, ``multiclass.py``) import it and never the reverse; the plain
``(y_true, y_pred, groups)`` forms live in ``fairness.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from fairmed.metrics.names import BOUNDED, direction

GAP_FORMS: tuple[str, ...] = ("difference", "signed", "ratio", "worst", "std", "ser")
CRITERION = "criterion"  # the Results ``group`` of criterion rows


def _safe(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def _div(num, den):
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out


def gap_values(values: np.ndarray, metric: str) -> dict[str, np.ndarray]:
    """Every gap form of per-group values (..., G) -> {form: array (...)}; see module docstring."""
    v = np.asarray(values, dtype=float)
    defined = (~np.isnan(v)).sum(-1) >= 2
    hi = np.where(defined, _safe(np.nanmax, v, axis=-1), np.nan)
    lo = np.where(defined, _safe(np.nanmin, v, axis=-1), np.nan)
    out = {
        "difference": hi - lo,
        "signed": v[..., 0] - v[..., 1] if v.shape[-1] == 2 else None,
        "ratio": np.where(hi > 0, _div(lo, hi), np.nan),
        "std": np.where(defined, _safe(np.nanstd, v, axis=-1), np.nan),
    }
    better = direction(metric)
    if better is not None:
        out["worst"] = lo if better else hi
        if not better or metric in BOUNDED:
            err_hi, err_lo = (1 - lo, 1 - hi) if better else (hi, lo)
            out["ser"] = _div(err_hi, err_lo)
    return {form: out[form] for form in GAP_FORMS if out.get(form) is not None}


def pairwise_worst(per_group: np.ndarray) -> np.ndarray:
    """max over group pairs of a per-pair statistic given as (..., G, G); NaN pairs ignored."""
    g = per_group.shape[-1]
    mask = ~np.eye(g, dtype=bool)
    flat = per_group[..., mask]
    ok = ~np.isnan(flat).all(-1)
    return np.where(ok, _safe(np.nanmax, np.where(np.isnan(flat), -np.inf, flat), axis=-1), np.nan)


def binary_criteria(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Criteria of a binary task from per-group metrics (..., G) -> {criterion: (...)}."""
    diff = {m: gap_values(metrics[m], m)["difference"] for m in ("selection_rate", "accuracy", "tpr", "fpr")}
    out = {
        "demographic_parity": diff["selection_rate"],
        "accuracy_parity": diff["accuracy"],
        "equal_opportunity": diff["tpr"],
        "equalized_odds": np.fmax(diff["tpr"], diff["fpr"]),
    }
    tpr, fpr, tnr = (np.asarray(metrics[k], dtype=float)[..., None] for k in ("tpr", "fpr", "tnr"))
    rates = {"tpr": tpr, "fpr": fpr, "tnr": tnr}  # (..., G, C=1)
    out.update(equal_odds_measures(rates))
    return out


def equal_odds_measures(rates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Eopp0, Eopp1, Eodd (worst pair) and, for two groups, their signed forms.

    ``rates`` holds one-vs-rest ``tpr``, ``fpr``, ``tnr`` arrays shaped (..., G, C); each measure
    is the mean over the C classes (the papers' multi-class definition). With C = 2 that mean is
    symmetric: class 0's TPR is class 1's TNR, so Eopp0 == Eopp1 == (|dTPR_1| + |dTNR_1|) / 2,
    the signed Eodd is 0 and |Eodd| equals the binary (positive-class, C = 1) value. Binary tasks
    therefore pass the positive class only.
    """
    tpr, fpr, tnr = rates["tpr"], rates["fpr"], rates["tnr"]

    def pair(x):  # (..., G, C) -> (..., G, G, C): x_a - x_b
        return x[..., :, None, :] - x[..., None, :, :]

    d_tpr, d_fpr, d_tnr = pair(tpr), pair(fpr), pair(tnr)
    out = {
        "eopp0": pairwise_worst(_safe(np.mean, np.abs(d_tnr), axis=-1)),
        "eopp1": pairwise_worst(_safe(np.mean, np.abs(d_tpr), axis=-1)),
        "eodd": pairwise_worst(_safe(np.mean, np.abs(d_tpr + d_fpr), axis=-1) / 2),
    }
    if tpr.shape[-2] == 2:
        out["eopp0_signed"] = _safe(np.mean, d_tnr[..., 0, 1, :], axis=-1)
        out["eopp1_signed"] = _safe(np.mean, d_tpr[..., 0, 1, :], axis=-1)
        out["eodd_signed"] = _safe(np.mean, d_tpr[..., 0, 1, :] + d_fpr[..., 0, 1, :], axis=-1) / 2
    return out


def multiclass_dp(pred_rates: np.ndarray) -> np.ndarray:
    """Multi-class demographic parity: worst pair of sum_c |rate_a,c - rate_b,c|; input (..., G, C)."""
    d = np.abs(pred_rates[..., :, None, :] - pred_rates[..., None, :, :]).sum(-1)
    return pairwise_worst(d)


def fate(acc_m: float, acc_b: float, fc_m: float, fc_b: float, lam: float = 1.0) -> float:
    """Fairness-accuracy trade-off (FairAdaBN): (ACC_m - ACC_b)/ACC_b - lam (FC_m - FC_b)/FC_b.

    Positive when the mitigated model m gains more (relative accuracy gain plus relative
    reduction of the fairness criterion FC) than it loses, relative to the baseline b.
    """
    return (acc_m - acc_b) / acc_b - lam * (fc_m - fc_b) / fc_b


def fate_table(
    results: pd.DataFrame,
    baseline: str,
    accuracy: str = "accuracy",
    fairness: str = "eodd",
    key: str = "method",
    lam: float = 1.0,
) -> pd.DataFrame:
    """FATE of every ``key`` value (e.g. method) against ``baseline``, from tidy Results.

    The accuracy measure is read from overall rows (attribute ``overall``), the fairness
    criterion from criterion rows; other run keys (seed, config, split) are matched.
    Returns: other run keys, ``key``, attribute, metric ``fate_<fairness>``, value.
    """
    from fairmed.schema import OVERALL, run_keys_in

    others = [k for k in run_keys_in(results.columns) if k != key]
    acc = results[(results["attribute"] == OVERALL) & (results["metric"] == accuracy)]
    fc = results[(results["group"] == CRITERION) & (results["metric"] == fairness)]
    acc = acc[[*others, key, "value"]].rename(columns={"value": "acc"})
    fc = fc[[*others, key, "attribute", "value"]].rename(columns={"value": "fc"})
    both = fc.merge(acc, on=[*others, key], how="inner")
    base = both[both[key] == baseline].drop(columns=[key])
    base = base.rename(columns={"acc": "acc_b", "fc": "fc_b"})
    merged = both.merge(base, on=[*others, "attribute"], how="inner")
    merged["value"] = fate(merged["acc"], merged["acc_b"], merged["fc"], merged["fc_b"], lam)
    merged["metric"] = f"fate_{fairness}"
    return merged[[*others, key, "attribute", "metric", "value"]].reset_index(drop=True)
