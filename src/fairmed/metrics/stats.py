"""Uncertainty and tests: stratified bootstrap weights, percentile intervals, Mann-Whitney U with
significance stars, and a paired (by seed) Wilcoxon signed-rank test.

The bootstrap never materialises resampled tables: a replicate is a vector of multinomial counts
(how often each sample was drawn), drawn within each group so that group sizes stay fixed
(stratified resampling). Metrics are weighted sums over those counts (see ``groups.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

# STAR_LEVELS below: the sex-ratio paper's significance convention (* at p <= 0.1, not 0.05), (threshold, mark), checked in order
_CACHE_CELLS = 1 << 16  # per-block cells: counting is fastest while the block fits in L2
# replicates per block at least. 1, measured: for a group over 65,536 rows one call already draws
# >= 65,536 indices, so the per-call overhead is a few percent, while a block of 8 pushes the
# bincount out of cache (64 replicates, CPU time: 500,000 rows 0.26 s at 1 vs 0.36 s at 8;
# 70,000 rows 0.028 s vs 0.032 s)
_MIN_BLOCK = 1
_EXACT_MAX = 50  # pairs up to which paired_test computes the exact Wilcoxon p-value

STAR_LEVELS: tuple[tuple[float, str], ...] = ((1e-4, "****"), (1e-3, "***"), (1e-2, "**"), (0.1, "*"))


def resample_counts(bounds: np.ndarray, n_rep: int, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Stratified bootstrap counts (n_rep, n): within each group [bounds[g], bounds[g+1]), n_g
    draws with replacement from its n_g samples; each row sums to n_g per group.

    Draws uniform indices and counts them with one ``bincount`` per group (offset by replicate),
    so the work is vectorized over replicates.
    """
    n = int(bounds[-1])
    out = np.empty((n_rep, n), dtype=dtype)
    for a, b in zip(bounds[:-1], bounds[1:]):
        size = int(b - a)
        if size == 0:
            continue
        # count in blocks of replicates small enough for the counts to stay in cache (at least
        # _MIN_BLOCK); the draws form one stream whatever the blocking, so the counts do not
        # depend on the block size
        step = max(1, min(n_rep, max(_MIN_BLOCK, _CACHE_CELLS // size)))
        for r0 in range(0, n_rep, step):
            r1 = min(r0 + step, n_rep)
            idx = rng.integers(0, size, size=(r1 - r0, size), dtype=np.int64)
            if r1 - r0 > 1:  # one bincount for the block: offset each replicate's indices
                idx += (np.arange(r1 - r0, dtype=np.int64) * size)[:, None]
            counts = np.bincount(idx.ravel(), minlength=(r1 - r0) * size)
            out[r0:r1, a:b] = counts.reshape(r1 - r0, size)
    return out


def replicate_chunks(n_rep: int, n: int, budget: int = 1 << 23) -> list[tuple[int, int]]:
    """(start, stop) chunks of replicates so that a chunk's weight matrix stays ~``budget`` cells."""
    step = max(1, min(n_rep, budget // max(n, 1)))
    return [(s, min(s + step, n_rep)) for s in range(0, n_rep, step)]


def percentile_interval(replicates: np.ndarray, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval along axis 0, ignoring NaN replicates."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    alpha = (1 - ci) / 2
    reps = np.asarray(replicates, dtype=float)
    if reps.shape[0] == 0:
        nan = np.full(reps.shape[1:], np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        lo, hi = np.nanquantile(reps, [alpha, 1 - alpha], axis=0)
    return lo, hi


# ------------------------------------------------------------------ Mann-Whitney U
def _mwu_exact_sf(u: float, n1: int, n2: int) -> float:
    """P(U >= u) under H0 without ties: coefficients of the Gaussian binomial [n1+n2, n1]_q."""
    m, n = sorted((n1, n2))
    size = m * n + 1
    poly = np.zeros(size)
    poly[0] = 1.0
    for i in range(1, m + 1):
        # multiply by (1 - q^(n+i)), then divide by (1 - q^i) (a strided cumulative sum)
        k = n + i
        if k < size:
            poly[k:] -= poly[: size - k].copy()
        for r in range(i):
            poly[r::i] = np.cumsum(poly[r::i])
    counts = np.round(poly)
    total = counts.sum()
    start = int(np.ceil(u - 1e-9))
    return float(counts[max(start, 0) :].sum() / total)


def mann_whitney(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    alternative: str = "two-sided",
    method: str = "auto",
    use_continuity: bool = True,
) -> tuple[float, float]:
    """Mann-Whitney U test of two independent samples -> (U of ``a``, p-value).

    Same statistic and p-value as ``scipy.stats.mannwhitneyu`` (mid-ranks, tie-corrected normal
    approximation with continuity correction; ``auto`` is exact when a sample has at most 8
    values and there are no ties). NaN values are dropped.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return float("nan"), float("nan")
    from scipy.stats import rankdata  # lazily: scipy.stats is slow to import

    ranks = rankdata(np.concatenate([x, y]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    u2 = n1 * n2 - u1
    if alternative == "greater":
        u, factor = u1, 1.0
    elif alternative == "less":
        u, factor = u2, 1.0
    elif alternative == "two-sided":
        u, factor = max(u1, u2), 2.0
    else:
        raise ValueError(f"alternative {alternative!r}: expected 'two-sided', 'less' or 'greater'")
    _, tie_counts = np.unique(np.concatenate([x, y]), return_counts=True)
    ties = bool((tie_counts > 1).any())
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or ties else "exact"
    if method == "exact":
        p = _mwu_exact_sf(u, n1, n2)
    elif method == "asymptotic":
        n = n1 + n2
        t = tie_counts.astype(float)
        sd = np.sqrt(n1 * n2 / 12 * ((n + 1) - (t**3 - t).sum() / (n * (n - 1))))
        num = u - n1 * n2 / 2 - (0.5 if use_continuity else 0.0)
        z = num / sd if sd > 0 else (np.inf if num > 0 else -np.inf if num < 0 else np.nan)
        p = float(special.ndtr(-z))
    else:
        raise ValueError(f"method {method!r}: expected 'auto', 'exact' or 'asymptotic'")
    return u1, float(np.clip(p * factor, 0.0, 1.0))


def stars(p: float) -> str:
    """Significance marks: **** p<=1e-4, *** p<=1e-3, ** p<=1e-2, * p<=0.1, else ``ns``."""
    if p is None or np.isnan(p):
        return "ns"
    for level, mark in STAR_LEVELS:
        if p <= level:
            return mark
    return "ns"


def paired_test(a, b) -> tuple[float, float]:
    """Wilcoxon signed-rank test of runs paired by seed -> (statistic, two-sided p).

    ``a`` and ``b`` are sequences in the same seed order, or pandas Series indexed by seed (then
    aligned on the seeds both have). Pairs with a NaN are dropped; all-zero differences give p=1.
    The p-value is exact (the permutation distribution of the signs) up to 50 pairs without zero
    or tied differences, so its floor at n seeds is :func:`min_p_wilcoxon` (0.0625 at 5 seeds);
    otherwise scipy's normal approximation.
    """
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_test needs one value per seed in both sets, got {len(x)} and {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    d = x[keep] - y[keep]
    if len(d) == 0:
        return float("nan"), float("nan")
    if np.all(d == 0):
        return 0.0, 1.0
    from scipy.stats import wilcoxon

    magnitudes = np.abs(d[d != 0])
    exact = len(d) <= _EXACT_MAX and len(magnitudes) == len(d) and len(np.unique(magnitudes)) == len(d)
    res = wilcoxon(x[keep], y[keep], method="exact" if exact else "auto")
    return float(res.statistic), float(res.pvalue)


def min_p_wilcoxon(n: int) -> float:
    """Smallest two-sided p-value of the exact Wilcoxon signed-rank test on ``n`` pairs: 2 / 2^n."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else float("nan")


def min_p_mann_whitney(n1: int, n2: int) -> float:
    """Smallest two-sided p-value of the exact Mann-Whitney U test: 2 / C(n1 + n2, n1)."""
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    return min(1.0, 2.0 / float(special.comb(n1 + n2, n1, exact=True)))


def unreachable_stars(min_p: float) -> list[str]:
    """The marks of :data:`STAR_LEVELS` that a test whose smallest possible p is ``min_p`` cannot give."""
    return [mark for level, mark in STAR_LEVELS if min_p > level]


def star_floor_note(min_p: float, test: str, unit: str) -> str:
    """One sentence for a star legend: the test's floor and the marks it makes impossible ("" if none)."""
    marks = unreachable_stars(min_p)
    if np.isnan(min_p) or not marks:
        return ""
    cannot = " and ".join([", ".join(marks[:-1]), marks[-1]] if len(marks) > 1 else marks)
    return f"With {unit} the smallest p-value the {test} can give is {min_p:.2g}, so {cannot} cannot occur."


def stouffer(z: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Stouffer's combination of independent signed z-scores -> (Z = sum z / sqrt k, two-sided p).

    Keeps the sign: seeds whose differences point the same way add up, opposite ones cancel. NaN
    scores are dropped; none left gives NaN.
    """
    values = np.asarray(z, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    combined = float(values.sum() / np.sqrt(len(values)))
    return combined, float(2 * special.ndtr(-abs(combined)))


def compare_runs(
    results: pd.DataFrame,
    metric: str,
    by: str = "method",
    baseline: str | None = None,
    paired_on: str | None = "seed",
) -> pd.DataFrame:
    """Each value of ``by`` against ``baseline`` per (attribute, group) over seeds.

    Returns attribute, group, ``by``, n_a, n_b, mean_a, mean_b, u, p, stars and, when
    ``paired_on`` is a column, the Wilcoxon paired p-value (``p_paired``).
    """
    rows = results[results["metric"] == metric]
    values = list(dict.fromkeys(rows[by].astype(str)))
    if not values:
        return pd.DataFrame()
    base = baseline if baseline is not None else values[0]
    out = []
    for (attribute, group), sub in rows.groupby(["attribute", "group"], sort=False, observed=True):
        ref = sub[sub[by].astype(str) == base]
        for other in values:
            if other == base:
                continue
            cur = sub[sub[by].astype(str) == other]
            u, p = mann_whitney(ref["value"], cur["value"])
            row = {
                "attribute": attribute,
                "group": group,
                by: other,
                "baseline": base,
                "n_a": len(ref),
                "n_b": len(cur),
                "mean_a": ref["value"].mean(),
                "mean_b": cur["value"].mean(),
                "u": u,
                "p": p,
                "stars": stars(p),
            }
            if paired_on and paired_on in sub.columns:
                _, row["p_paired"] = paired_test(
                    ref.set_index(paired_on)["value"], cur.set_index(paired_on)["value"]
                )
            out.append(row)
    return pd.DataFrame(out)


def compare_table(
    results: pd.DataFrame,
    by: str,
    baseline: str,
    metrics: Sequence[str] | None = None,
    paired_on: str | None = "seed",
) -> pd.DataFrame:
    """:func:`compare_runs` for several metrics, separately within each value of the other run keys.

    Runs differing only in ``by`` and ``paired_on`` (e.g. methods over seeds) are compared; other
    run keys (study, config, split) are held fixed, so a test split is never pooled with a val
    split. ``metrics`` defaults to every metric but ``n`` and ``threshold``. Columns: the other
    run keys, ``metric``, then those of :func:`compare_runs`.
    """
    from fairmed.schema import run_keys_in

    others = [k for k in run_keys_in(results.columns) if k not in (by, paired_on)]
    if metrics is None:
        metrics = [m for m in dict.fromkeys(results["metric"]) if m not in ("n", "threshold")]
    parts = []
    subsets = results.groupby(others, sort=False, dropna=False) if others else [((), results)]
    for key_values, sub in subsets:
        kv = key_values if isinstance(key_values, tuple) else (key_values,)
        for metric in metrics:
            table = compare_runs(sub, metric, by=by, baseline=baseline, paired_on=paired_on)
            if table.empty:
                continue
            table.insert(0, "metric", metric)
            for k, v in reversed(list(zip(others, kv))):
                table.insert(0, k, v)
            parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
