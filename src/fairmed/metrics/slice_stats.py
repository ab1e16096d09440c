"""The statistics of a slice search: per-cell additive sums, the slice-vs-rest z, an optimistic
bound, and the held-out test (see :mod:`fairmed.metrics.slices`).

- Mean-type metrics (TPR, FPR, TNR, FNR, accuracy, PPV, NPV, Brier, cross-entropy, any per-sample
  value such as ``recon_mse``) are the mean of a per-row value ``v`` over the rows they are
  defined on (:class:`MeanStatistic`). Held-out test: Fisher's exact test for 0/1 values, the
  pooled z otherwise.
- The AUC (:class:`AucStatistic`) is searched from per-cell score histograms with the
  Hanley-McNeil variance and tested exactly with DeLong's variance.
- ECE is refused (:data:`REFUSED`): it grows like 1/sqrt(n) on a calibrated model.

A statistic turns rows into small integer *kinds* (and optional weight columns), so one
``bincount`` per attribute set gives every cell's sums; ``reduce`` turns them into the additive
per-cell statistics that ``z``, ``effect`` and ``bound`` read (a complement is ``total - cell``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from fairmed.errors import InputError, SpecError, first_rows
from fairmed.metrics.delong import auc_variance
from fairmed.metrics.groups import cross_entropy_terms, direction
from fairmed.metrics.validate import as_binary_labels, as_probabilities, require_columns
from fairmed.schema import Y_SCORE, Y_TRUE

# metric -> (rows it is defined on, per-row value, higher value is worse); v and rows from y, pred
_RATES: dict[str, tuple[str, str, bool]] = {
    "tpr": ("positives", "pred", False),
    "fnr": ("positives", "miss", True),
    "tnr": ("negatives", "reject", False),
    "fpr": ("negatives", "pred", True),
    "accuracy": ("all", "correct", False),
    "ppv": ("predicted", "y", False),
    "npv": ("rejected", "truth_negative", False),
}
_SCORE_VALUES = ("brier", "bce")  # per-row losses of the scores, higher is worse
SLICE_METRICS: tuple[str, ...] = (*_RATES, *_SCORE_VALUES, "auc")
REFUSED = {
    "ece": (
        "ece cannot be searched over slices: the ECE of n rows grows like 1/sqrt(n) even for a "
        "calibrated model, so the search would rank small slices first and the slice-vs-rest test "
        "would reject on noise; search 'brier' (mean squared error of the scores) instead"
    ),
}
AUC_BINS = 64  # score bins of the AUC histograms used in the search (the test is exact)
# what a held-out test reports besides n and n_rest
TEST_FIELDS = (
    "value",
    "value_ci_low",
    "value_ci_high",
    "rest_value",
    "effect",
    "ci_low",
    "ci_high",
    "z",
    "p",
)


class MeanStatistic:
    """A metric that is the mean of a per-row value over the rows it is defined on.

    Per cell, additive: support, positives, m (rows of the metric), s1 = sum of badness u, and
    s1p = sum of max(u, 0), where u = +-(v - mu) is positive when a row is worse than the mean.
    """

    def __init__(self, name: str, rows: np.ndarray, v: np.ndarray, higher_is_worse: bool, positives):
        self.name = name
        self.rows = rows
        self.v = np.where(rows, v, 0.0)
        self.sign = 1.0 if higher_is_worse else -1.0
        self.positives = positives
        self.binary = bool(np.isin(self.v[rows], (0.0, 1.0)).all())

    def prepare(self, idx: np.ndarray) -> tuple[np.ndarray, int, np.ndarray | None]:
        """Row kinds (for the counts) and weight columns over the rows ``idx`` of one half."""
        rows, v = self.rows[idx], self.v[idx]
        self.M = int(rows.sum())
        if self.M < 2:
            raise InputError(f"slices: {self.name} is defined on {self.M} rows of the search half")
        self.mu = float(v[rows].mean())
        self.sigma = float(v[rows].std()) or 1.0
        u = np.where(rows, self.sign * (v - self.mu), 0.0)
        self.u_max = float(u.max()) if u.max() > 0 else 1.0
        pos = np.zeros(len(idx), bool) if self.positives is None else self.positives[idx]
        kinds = pos.astype(np.int64) * 4 + rows * 2
        if self.binary:  # 0/1 values: u takes two values, so counts of bad rows give the sums
            self.u_bad, self.u_good = float(u.max()), float(u.min())
            return kinds + (u > 0), 8, None
        return kinds, 8, np.stack([u, np.maximum(u, 0)])  # (2, n): contiguous rows for bincount

    def reduce(self, counts: np.ndarray, sums: np.ndarray | None) -> np.ndarray:
        """(cells, 5): support, positives, m, s1, s1p (kinds: 4 * positive + 2 * metric row + bad)."""
        support = counts.sum(1)
        positives = support if self.positives is None else counts[:, 4:].sum(1)
        m = counts[:, [2, 3, 6, 7]].sum(1)
        if sums is None:
            bad = counts[:, 3] + counts[:, 7]
            sums = np.column_stack([bad * self.u_bad + (m - bad) * self.u_good, bad * self.u_bad])
        return np.column_stack([support, positives, m, sums[:, 0], sums[:, 1]]).astype(float)

    def metric_rows(self, stats: np.ndarray) -> np.ndarray:
        return stats[..., 2]

    def z(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """How much worse the mean of ``a`` is than of ``b`` in population standard errors."""
        ma, mb = a[..., 2], b[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = a[..., 3] / ma - b[..., 3] / mb
            out = diff / (self.sigma * np.sqrt(1 / ma + 1 / mb))
        return np.where((ma > 0) & (mb > 0), out, np.nan)

    def effect(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Metric of ``a`` minus metric of ``b`` (metric units)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.sign * (a[..., 3] / a[..., 2] - b[..., 3] / b[..., 2])

    def bound(self, a: np.ndarray) -> np.ndarray:
        """Largest z any subset of the cell can reach against its complement (inf: no bound).

        The best subset of m rows holds the largest badness values, so its sum is at most
        min(s1p, m * u_max); the z of such a sum is largest at m* = s1p / u_max, which gives
        sqrt(s1p * u_max * M / (M - m*)) / sigma (valid while the cell holds at most half of M).
        """
        M = self.M
        s1p = a[..., 4]
        mstar = np.minimum(s1p / self.u_max, M - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.sqrt(s1p * self.u_max * M / (M - mstar)) / self.sigma
        return np.where(a[..., 2] <= M / 2, b, np.inf)

    def test(self, member: np.ndarray, idx: np.ndarray, ci: float) -> dict[str, float]:
        """Slice vs rest on the rows ``idx`` (held out): values, effect with a Wald/Welch CI, and
        a one-sided p-value: for 0/1 values Fisher's exact test (the slice's count of bad rows
        against the hypergeometric law of a random subset of its size: the normal z is too
        liberal in the tail for small slices, measured), else the pooled (permutation-variance) z."""
        rows, v = self.rows[idx], self.v[idx]
        s, c = member & rows, ~member & rows
        ms, mc = int(s.sum()), int(c.sum())
        out = {"n": ms, "n_rest": mc}
        if ms < 2 or mc < 2:
            return out | dict.fromkeys(TEST_FIELDS, np.nan)
        vs, vc = v[s].mean(), v[c].mean()
        var_s, var_c = v[s].var(ddof=1), v[c].var(ddof=1)
        q = float(special.ndtri(0.5 + ci / 2))
        se = np.sqrt(var_s / ms + var_c / mc)
        pooled = v[rows].std() * np.sqrt(1 / ms + 1 / mc)
        z = self.sign * (vs - vc) / pooled if pooled > 0 else 0.0
        if self.binary:  # Wilson interval of the slice's rate
            centre = (vs + q**2 / (2 * ms)) / (1 + q**2 / ms)
            half = q * np.sqrt(vs * (1 - vs) / ms + q**2 / (4 * ms**2)) / (1 + q**2 / ms)
        else:
            centre, half = vs, q * np.sqrt(var_s / ms)
        p = float(special.ndtr(-z))
        if self.binary:
            from scipy.stats import hypergeom  # lazily: scipy.stats is slow to import

            bad = v == (1.0 if self.sign > 0 else 0.0)
            p = float(hypergeom.sf(int((bad & s).sum()) - 1, ms + mc, int((bad & rows).sum()), ms))
        return out | {
            "value": vs,
            "value_ci_low": centre - half,
            "value_ci_high": centre + half,
            "rest_value": vc,
            "effect": vs - vc,
            "ci_low": vs - vc - q * se,
            "ci_high": vs - vc + q * se,
            "z": z,
            "p": p,
        }


class AucStatistic:
    """AUC: per cell, histograms of the scores of negatives and positives in quantile bins.

    The search's AUC counts pairs within one bin as ties (half), so it is close to, not exactly,
    the AUC; the held-out test uses the exact AUC and DeLong's variance. No optimistic bound is
    known for the AUC, so only the support rules prune (bound = inf).
    """

    name = "auc"

    def __init__(self, y: np.ndarray, s: np.ndarray, n_bins: int = AUC_BINS):
        self.y, self.s, self.n_bins = y, s, n_bins
        self.positives = y.astype(bool)

    def prepare(self, idx: np.ndarray) -> tuple[np.ndarray, int, None]:
        s = self.s[idx]
        edges = np.unique(np.quantile(s, np.linspace(0, 1, self.n_bins + 1)[1:-1]))
        bins = np.searchsorted(edges, s, side="right")
        self.B = len(edges) + 1
        return self.y[idx].astype(np.int64) * self.B + bins, 2 * self.B, None

    def reduce(self, counts: np.ndarray, sums: np.ndarray | None) -> np.ndarray:
        """(cells, 2 + 2B): support, positives, negative histogram, positive histogram."""
        pos = counts[:, self.B :].sum(1)
        return np.column_stack([counts.sum(1), pos, counts]).astype(float)

    def metric_rows(self, stats: np.ndarray) -> np.ndarray:
        """Rows of the smaller class: the AUC needs both."""
        return np.minimum(stats[..., 1], stats[..., 0] - stats[..., 1])

    def _auc_var(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        neg, pos = a[..., 2 : 2 + self.B], a[..., 2 + self.B :]
        n_neg, n_pos = neg.sum(-1), pos.sum(-1)
        below = np.cumsum(neg, -1) - neg
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (pos * (below + neg / 2)).sum(-1) / (n_pos * n_neg)
            q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
            var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
                n_pos * n_neg
            )
        return auc, np.maximum(var, 1e-12)

    def z(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Hanley-McNeil z of AUC(b) - AUC(a): positive when ``a`` ranks worse."""
        auc_a, var_a = self._auc_var(a)
        auc_b, var_b = self._auc_var(b)
        return (auc_b - auc_a) / np.sqrt(var_a + var_b)

    def effect(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._auc_var(a)[0] - self._auc_var(b)[0]

    def bound(self, a: np.ndarray) -> np.ndarray:
        return np.full(a.shape[:-1], np.inf)

    def test(self, member: np.ndarray, idx: np.ndarray, ci: float) -> dict[str, float]:
        y, s = self.y[idx], self.s[idx]
        a, va = auc_variance(y[member], s[member])
        b, vb = auc_variance(y[~member], s[~member])
        out = {"n": int(member.sum()), "n_rest": int((~member).sum())}
        if np.isnan([a, b, va, vb]).any():
            return out | dict.fromkeys(TEST_FIELDS, np.nan)
        se = np.sqrt(va + vb)
        q = float(special.ndtri(0.5 + ci / 2))
        z = (b - a) / se if se > 0 else 0.0
        return out | {
            "value": a,
            "value_ci_low": a - q * np.sqrt(va),
            "value_ci_high": a + q * np.sqrt(va),
            "rest_value": b,
            "effect": a - b,
            "ci_low": a - b - q * se,
            "ci_high": a - b + q * se,
            "z": z,
            "p": float(special.ndtr(-z)),
        }


def make_statistic(
    table: pd.DataFrame,
    metric: str,
    label: str = Y_TRUE,
    score: str = Y_SCORE,
    pred: str | None = None,
    threshold: float = 0.5,
    worse: Literal["higher", "lower"] | None = None,
) -> MeanStatistic | AucStatistic:
    """The statistic of ``metric``: a rate from labels and decisions, a score loss, the AUC, or
    the mean of a per-sample value column (``recon_mse``)."""
    if metric in REFUSED:
        raise SpecError(REFUSED[metric])
    if metric in _RATES or metric in _SCORE_VALUES or metric == "auc":
        require_columns(table, [label])
        y = as_binary_labels(table[label], label)
        s = as_probabilities(table[score], score) if score in table.columns else None
        if metric == "auc" or metric in _SCORE_VALUES:
            if s is None:
                raise InputError(f"slices: metric {metric!r} needs scores: column {score!r} not found")
            if metric == "auc":
                return AucStatistic(y, s)
            v = (s - y) ** 2 if metric == "brier" else cross_entropy_terms(y, s)
            return MeanStatistic(metric, np.ones(len(y), bool), v, True, y.astype(bool))
        if pred is not None:
            require_columns(table, [pred])
            d = as_binary_labels(table[pred], pred)
        elif s is not None:
            d = (s >= threshold).astype(np.int64)
        else:
            raise InputError(f"slices: metric {metric!r} needs decisions: no column {score!r} or pred")
        rows_of = {
            "positives": y == 1,
            "negatives": y == 0,
            "all": np.ones(len(y), bool),
            "predicted": d == 1,
            "rejected": d == 0,
        }
        value_of = {
            "pred": d,
            "miss": 1 - d,
            "reject": 1 - d,
            "correct": (d == y).astype(np.int64),
            "y": y,
            "truth_negative": 1 - y,
        }
        rows, value, higher = _RATES[metric]
        return MeanStatistic(metric, rows_of[rows], value_of[value].astype(float), higher, y.astype(bool))
    if metric not in table.columns:
        raise SpecError(
            f"slices: metric {metric!r}: expected one of {', '.join(SLICE_METRICS)} or a per-sample "
            f"value column (have: {', '.join(map(str, table.columns))})"
        )
    raw = table[metric]
    num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = raw.notna().to_numpy() & ~np.isfinite(num)
    if bad.any():
        raise InputError(
            f"column {metric!r}: non-numeric or infinite values at rows {first_rows(np.flatnonzero(bad))} "
            "(expected a per-sample value; empty cells are left out)"
        )
    rows = np.isfinite(num)
    v = np.where(rows, num, 0.0)
    higher = {"higher": True, "lower": False}.get(worse or "")
    if higher is None:
        better = direction(metric)
        if better is None:
            raise SpecError(
                f"slices: is a higher {metric!r} worse or better? say so with worse='higher' or 'lower'"
            )
        higher = not better
    positives = as_binary_labels(table[label], label).astype(bool) if label in table.columns else None
    return MeanStatistic(metric, rows, v, higher, positives)
