"""Power of a two-group gap test and the minimum detectable gap (MDG).

An audit that finds "no significant gap" has only said something if it could have seen one. For
the metrics TPR, FPR, accuracy (proportions) and AUC this module answers, for two groups of given
sizes and prevalences: the power of a two-sided level-``alpha`` test against a gap ``d``, the
smallest gap detected with the target power (default 80%), and the inverse, the images per group
needed for a gap.

The model (documented in ``docs/audit.md``):

- a proportion's unit is its denominator: TPR is estimated on a group's positives (n x prevalence),
  FPR on its negatives (n x (1 - prevalence)), accuracy on all n; its variance is p (1 - p) / m;
- an AUC's variance is Hanley & McNeil's (1982, eq. 2) at the AUC, the group's positives and negatives;
- the test is the two-sample z test: variance at the pooled value under H0, at the two groups' own
  values under the alternative (the standard normal-approximation power of two proportions);
- the two values are ``value +- d/2`` around the base ``value`` (moved inside [0, 1] if they fall
  outside), and the worse-off group is whichever of the two gives the lower power (conservative);
- more than two groups: the smallest group (by its metric's denominator) against the largest,
  the comparison every other pair involving the smallest group is no easier than.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

PROPORTIONS: tuple[str, ...] = ("tpr", "fpr", "accuracy")
METRICS: tuple[str, ...] = (*PROPORTIONS, "auc")
DEFAULT_POWER = 0.8
DEFAULT_ALPHA = 0.05
_MAX_N = 10**9  # images per group beyond which n_per_group gives up


def hanley_mcneil_variance(auc: float, n_pos: float, n_neg: float) -> float:
    """Hanley & McNeil (1982) variance of an AUC estimated on ``n_pos`` positives and ``n_neg`` negatives."""
    if n_pos < 1 or n_neg < 1:
        return math.nan
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    a2 = auc**2
    return (auc * (1 - auc) + (n_pos - 1) * (q1 - a2) + (n_neg - 1) * (q2 - a2)) / (n_pos * n_neg)


def _variance(metric: str, value: float, n: float, prevalence: float) -> float:
    """Variance of one group's estimate of ``metric`` at ``value``."""
    n_pos, n_neg = n * prevalence, n * (1 - prevalence)
    if metric == "auc":
        return hanley_mcneil_variance(value, n_pos, n_neg)
    m = {"tpr": n_pos, "fpr": n_neg, "accuracy": n}[metric]
    return value * (1 - value) / m if m >= 1 else math.nan


def _denominator(metric: str, n: float, prevalence: float) -> float:
    """What a group's estimate of ``metric`` rests on (its positives, negatives, all, or pairs)."""
    return {
        "tpr": n * prevalence,
        "fpr": n * (1 - prevalence),
        "accuracy": n,
        "auc": n * prevalence * n * (1 - prevalence),
    }[metric]


def _pair(values: float, gap: float) -> tuple[float, float]:
    """The two groups' values ``value -+ gap/2``, moved inside [0, 1]."""
    lo, hi = values - gap / 2, values + gap / 2
    if hi > 1:
        lo, hi = lo - (hi - 1), 1.0
    if lo < 0:
        lo, hi = 0.0, hi - lo
    return lo, min(hi, 1.0)


def power(
    metric: str,
    gap: float,
    n: Sequence[float],
    prevalence: Sequence[float] | float,
    value: float,
    alpha: float = DEFAULT_ALPHA,
) -> float:
    """Power of the two-sided level-``alpha`` z test against a gap ``gap`` between two groups of sizes
    ``n`` (images) and prevalences ``prevalence``, the metric being ``value`` on average."""
    pair = _two_groups(metric, n, prevalence)
    return _pair_power(metric, gap, pair, value, float(special.ndtri(1 - alpha / 2)))


def _pair_power(metric: str, gap: float, pair, value: float, z: float) -> float:
    """:func:`power` for the pair of (size, prevalence) already chosen, at the critical value ``z``."""
    (n1, p1), (n2, p2) = pair
    lo, hi = _pair(value, abs(gap))
    d = hi - lo
    m1, m2 = _denominator(metric, n1, p1), _denominator(metric, n2, p2)
    if m1 < 1 or m2 < 1:  # a group without a unit to estimate the metric on
        return math.nan
    worst = 1.0
    for v1, v2 in ((lo, hi), (hi, lo)):
        pooled = (m1 * v1 + m2 * v2) / (m1 + m2)
        se0 = math.sqrt(_variance(metric, pooled, n1, p1) + _variance(metric, pooled, n2, p2))
        se1 = math.sqrt(_variance(metric, v1, n1, p1) + _variance(metric, v2, n2, p2))
        if math.isnan(se0) or math.isnan(se1):
            return math.nan
        if se1 == 0:
            result = 1.0 if d > z * se0 else 0.0
        else:
            result = _ndtr((d - z * se0) / se1) + _ndtr((-d - z * se0) / se1)
        worst = min(worst, result)
    return worst


def _ndtr(x: float) -> float:
    """The standard normal CDF of a Python float (math.erfc: no numpy call per evaluation)."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


def minimum_detectable_gap(
    metric: str,
    n: Sequence[float],
    prevalence: Sequence[float] | float,
    value: float,
    alpha: float = DEFAULT_ALPHA,
    target: float = DEFAULT_POWER,
) -> float:
    """The smallest gap detected with power ``target`` (``inf`` when no gap in [0, 1] is; NaN when a
    group has no unit to estimate the metric on, e.g. no positives for TPR)."""
    _check_levels(alpha, target)
    if not 0 <= value <= 1 or math.isnan(value):
        return math.nan

    pair = _two_groups(metric, n, prevalence)
    z = float(special.ndtri(1 - alpha / 2))

    def short(d: float) -> float:
        return _pair_power(metric, d, pair, value, z) - target

    top = short(1.0)
    if math.isnan(top):
        return math.nan
    if top < 0:
        return math.inf
    if short(1e-9) >= 0:
        return 0.0
    return float(optimize.brentq(short, 1e-9, 1.0, xtol=1e-6))


def n_per_group(
    metric: str,
    gap: float,
    prevalence: Sequence[float] | float,
    value: float,
    alpha: float = DEFAULT_ALPHA,
    target: float = DEFAULT_POWER,
) -> int:
    """Images per group (groups of equal size, the given prevalences) for power ``target``
    against ``gap``; ``ValueError`` when no size reaches it (the gap cannot exist around ``value``)."""
    _check_levels(alpha, target)
    if not 0 < gap <= 1:
        raise ValueError(f"gap must be in (0, 1], got {gap}")
    prev = _prevalences(prevalence, max(2, int(np.size(prevalence))))

    def enough(size: int) -> bool:
        p = power(metric, gap, [size] * len(prev), prev, value, alpha)
        return not math.isnan(p) and p >= target

    hi = 2
    while not enough(hi):
        hi *= 2
        if hi > _MAX_N:
            raise ValueError(f"no group size up to {_MAX_N} detects a {metric} gap of {gap} at {value}")
    lo = hi // 2  # enough(lo) is False or lo is the first size tried
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return 1 if enough(1) else hi


def pooled_value(metric: str, values: np.ndarray, n: np.ndarray, prevalence: np.ndarray) -> float:
    """The metric over all groups together from per-group values: weighted by each group's
    denominator (exact for proportions; for AUC the within-group pairs' AUC, not the overall one)."""
    weights = np.array([_denominator(metric, a, b) for a, b in zip(n, prevalence)], dtype=float)
    ok = ~np.isnan(values) & (weights > 0)
    if not ok.any():
        return math.nan
    return float(np.average(values[ok], weights=weights[ok]))


def audit_mdg(
    point: dict[str, np.ndarray], alpha: float = DEFAULT_ALPHA, target: float = DEFAULT_POWER
) -> dict[str, float]:
    """MDG of each of TPR, FPR, accuracy and AUC present in one grouping's per-group point values
    (``point`` holds ``n`` and ``prevalence`` per group), for the audit's ``mdg`` column."""
    if "n" not in point or "prevalence" not in point or len(point["n"]) < 2:
        return {}
    n = np.asarray(point["n"], dtype=float)
    prev = np.asarray(point["prevalence"], dtype=float)
    out = {}
    for metric in METRICS:
        if metric not in point:
            continue
        base = pooled_value(metric, np.asarray(point[metric], dtype=float), n, prev)
        out[metric] = minimum_detectable_gap(metric, n, prev, base, alpha, target)
    return out


def _two_groups(metric, n, prevalence) -> tuple[tuple[float, float], tuple[float, float]]:
    """The pair a gap test is planned on: the smallest and the largest group by the metric's unit."""
    sizes = [float(x) for x in n]
    prev = _prevalences(prevalence, len(sizes))
    if len(sizes) < 2:
        raise ValueError(f"power needs at least two groups, got {len(sizes)}")
    if any(s < 0 for s in sizes) or any(not 0 <= p <= 1 for p in prev):
        raise ValueError("group sizes must be >= 0 and prevalences in [0, 1]")
    if metric not in METRICS:
        raise ValueError(f"power: metric {metric!r} not supported; expected one of {', '.join(METRICS)}")
    # ties broken by (size, prevalence), so the pair does not depend on the groups' order
    keys = [(_denominator(metric, s, p), s, p) for s, p in zip(sizes, prev)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    small, large = order[0], order[-1]
    if small == large:
        large = 1 - small if len(sizes) == 2 else (small + 1) % len(sizes)
    return (sizes[small], prev[small]), (sizes[large], prev[large])


def _prevalences(prevalence, k: int = 2) -> list[float]:
    if np.ndim(prevalence) == 0:
        return [float(prevalence)] * k
    prev = [float(p) for p in prevalence]  # type: ignore[union-attr]
    if len(prev) == 1:
        return prev * k
    if len(prev) != k:
        raise ValueError(f"give one prevalence or one per group ({k}), got {len(prev)}")
    return prev


def _check_levels(alpha: float, target: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < target < 1:
        raise ValueError(f"power must be in (0, 1), got {target}")
