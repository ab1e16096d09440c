"""Comparing several methods over several data sets (or mechanisms): average ranks, the Friedman test,
the Nemenyi critical difference (Demsar 2006, JMLR 7:1-30), cliques of methods a CD diagram joins,
and the Pareto front of a utility-fairness trade-off.

A *block* is one data set (one mechanism, or one seed within a single data set): the unit of
replication. Methods are ranked within each block (1 = best, ties share the mean rank); blocks
with a missing value are dropped, as the Friedman test needs complete blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def block_ranks(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Ranks within each row of ``values`` (blocks x methods): 1 for the best, mid-ranks for ties."""
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=float)
    return rankdata(-v if higher_is_better else v, axis=1)


def complete_blocks(values: np.ndarray) -> np.ndarray:
    """True for the rows (blocks) with a value for every method."""
    return ~np.isnan(np.asarray(values, dtype=float)).any(axis=1)


def average_ranks(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Mean rank of each method over the complete blocks (NaN for every method without any)."""
    v = np.asarray(values, dtype=float)
    v = v[complete_blocks(v)]
    if len(v) == 0:
        return np.full(v.shape[1], np.nan)
    return block_ranks(v, higher_is_better).mean(axis=0)


@dataclass(frozen=True)
class Friedman:
    """The Friedman test of k methods over n blocks.

    ``chi2`` and ``p_chi2``: Friedman's statistic with scipy's tie correction (equal to
    ``scipy.stats.friedmanchisquare``) and its chi-square p; ``f`` and ``p``: Iman and Davenport's
    F = (n - 1) chi2 / (n (k - 1) - chi2) on (k - 1, (k - 1)(n - 1)) degrees of freedom, which
    Demsar recommends (the chi-square approximation is conservative with few blocks)."""

    k: int
    n: int
    average_ranks: np.ndarray
    chi2: float
    p_chi2: float
    f: float
    p: float


def friedman_statistic(avg_ranks: np.ndarray, n: int, tie_correction: float = 1.0) -> float:
    """Demsar's Eq.: chi2_F = 12 n / (k (k + 1)) (sum_j R_j^2 - k (k + 1)^2 / 4), divided by the tie
    correction 1 - sum(t^3 - t) / (n k (k^2 - 1)) (1 without ties)."""
    r = np.asarray(avg_ranks, dtype=float)
    k = len(r)
    chi2 = 12.0 * n / (k * (k + 1)) * (float(np.sum(r**2)) - k * (k + 1) ** 2 / 4.0)
    return chi2 / tie_correction


def iman_davenport(chi2: float, n: int, k: int) -> tuple[float, float]:
    """Iman-Davenport's F and its p on (k - 1, (k - 1)(n - 1)) degrees of freedom (p 0 when chi2 is
    its maximum n (k - 1): every block ranks the methods alike)."""
    from scipy.stats import f as f_dist

    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12:
        return float("inf"), 0.0
    f = (n - 1) * chi2 / denominator
    return float(f), float(f_dist.sf(f, k - 1, (k - 1) * (n - 1)))


def friedman(values: np.ndarray, higher_is_better: bool = True) -> Friedman:
    """Friedman test on ``values`` (blocks x methods); needs k >= 2 methods and n >= 2 complete blocks."""
    from scipy.stats import chi2 as chi2_dist

    v = np.asarray(values, dtype=float)
    v = v[complete_blocks(v)]
    n, k = v.shape
    if k < 2 or n < 2:
        raise ValueError(f"the Friedman test needs at least 2 methods and 2 complete blocks, got {k} and {n}")
    ranks = block_ranks(v, higher_is_better)
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    correction = 1.0 - ties / (n * k * (k * k - 1))
    avg = ranks.mean(axis=0)
    if correction <= 0:  # every block ties every method: nothing to tell apart
        return Friedman(k, n, avg, 0.0, 1.0, 0.0, 1.0)
    chi2 = friedman_statistic(avg, n, correction)
    f, p = iman_davenport(chi2, n, k)
    return Friedman(k, n, avg, float(chi2), float(chi2_dist.sf(chi2, k - 1)), f, p)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """The Nemenyi test's critical value q_alpha for k methods: the studentized range quantile with
    infinite degrees of freedom over sqrt(2) (Demsar's Table 5a: 2.569 for k = 4 at alpha 0.05)."""
    from scipy.stats import studentized_range

    if k < 2:
        raise ValueError(f"the Nemenyi test needs at least 2 methods, got {k}")
    return float(studentized_range.ppf(1.0 - alpha, k, np.inf) / np.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference CD = q_alpha sqrt(k (k + 1) / (6 n)): two methods whose average
    ranks differ by more perform differently at level alpha (all pairs, family-wise)."""
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n)))


def cliques(avg_ranks: np.ndarray, cd: float) -> list[tuple[int, int]]:
    """The maximal runs of methods (by increasing average rank) whose ranks lie within ``cd`` of each
    other, as (first, last) positions in rank order, runs of one method left out: the bars of a
    critical-difference diagram (methods joined by a bar are not significantly different)."""
    r = np.sort(np.asarray(avg_ranks, dtype=float))
    out: list[tuple[int, int]] = []
    for i in range(len(r)):
        j = int(np.searchsorted(r, r[i] + cd + 1e-12, side="right")) - 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def pareto_front(accuracy, gap) -> np.ndarray:
    """True for points no other point dominates (accuracy >= and gap <=, one strictly); NaN: never."""
    a, g = np.asarray(accuracy, dtype=float), np.asarray(gap, dtype=float)
    ok = ~(np.isnan(a) | np.isnan(g))
    ge = (a[None, :] >= a[:, None]) & (g[None, :] <= g[:, None])
    strict = (a[None, :] > a[:, None]) | (g[None, :] < g[:, None])
    dominated = (ge & strict & ok[None, :]).any(axis=1)
    return ok & ~dominated


def distance_to_utopia(utility, gap) -> np.ndarray:
    """DTO (Han et al. 2021, as MEDFAIR selects models): the Euclidean distance of each candidate to
    the utopia point (best utility, smallest gap) after min-max normalising each axis over the
    candidates; an axis on which every candidate ties contributes 0. NaN where a value is missing."""
    u, g = np.asarray(utility, dtype=float), np.asarray(gap, dtype=float)
    if np.isnan(u).all() or np.isnan(g).all():
        return np.full(len(u), np.nan)
    return np.hypot(_shortfall(np.nanmax(u) - u), _shortfall(g - np.nanmin(g)))


def _shortfall(distance: np.ndarray) -> np.ndarray:
    """Distances from the best value over their range (0 everywhere when all candidates tie)."""
    span = np.nanmax(distance)
    return distance / span if span > 0 else distance * 0.0


__all__ = [
    "Friedman",
    "average_ranks",
    "block_ranks",
    "cliques",
    "complete_blocks",
    "critical_difference",
    "distance_to_utopia",
    "friedman",
    "friedman_statistic",
    "iman_davenport",
    "nemenyi_q",
    "pareto_front",
]
