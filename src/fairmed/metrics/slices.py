"""Subgroup discovery: the conjunctions of attribute values (slices) where a model does worst.

``find_slices(predictions, ["sex", "age", "fst", "site"], metric="fpr")`` searches every
conjunction of up to ``depth`` attribute values ("sex=female & age>=60 & fst=FST 5") with at least
``min_support`` rows and ``min_positives`` positives, ranks them by how much worse the metric is
in the slice than in the rest of the population, and tests the best ``top`` honestly:

- **Held-out split.** The units (``patient_id`` when present, else rows) are split at random in
  two halves. The search runs on the discovery half only; the ``top`` slices it finds are then
  measured on the other half, where nothing was chosen: their effect (slice minus rest), its
  confidence interval and a one-sided p-value there are free of the search's selection, and Holm
  over the ``top`` tested slices controls the family-wise error rate (measured in
  ``benchmarks/slices_planted.py``; see ``docs/slices.md``).
- **Search.** Attributes become codes once (categorical values; numbers binned by their
  :class:`~fairmed.data.groups.GroupSpec`, or at their quartiles when no edges are given; missing
  as its own value). For each set of up to ``depth`` attributes one ``bincount`` over the rows
  gives the additive statistics of every cell (a conjunction), so no Python loop runs over rows or
  slices. A set is skipped when no cell can qualify: every parent conjunction (one condition
  fewer) must meet the support rules and have an optimistic bound (the best statistic any subset
  of it could reach) at least the ``pool``-th best statistic found so far.
- **Statistic.** Mean-type metrics (TPR, FPR, TNR, FNR, accuracy, PPV, NPV, Brier, cross-entropy,
  any per-sample value such as ``recon_mse``) are the mean of a per-row value ``v`` over the rows
  they are defined on; a slice is ranked by the z statistic of ``mean_slice(v) - mean_rest(v)``
  with the population variance (the permutation variance under "the slice is like the rest"),
  signed so that positive means worse. AUC is ranked from per-cell score histograms (quantile
  bins) with the Hanley-McNeil variance and tested exactly (DeLong) on the held-out half. ECE is
  refused: the ECE of n rows grows like 1/sqrt(n) on a calibrated model, so a search would rank
  small slices first and the slice-vs-rest test would reject on noise (use ``brier``).
- **Redundancy.** A slice is folded into a parent (the slice without one of its conditions) when,
  within that parent, the slice is not worse than the parent's other rows (z below ``fold_z``):
  the extra condition does not change the effect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from fairmed.data.groups import MISSING_GROUP, GroupSpec, is_missing
from fairmed.errors import InputError, SpecError, first_rows
from fairmed.metrics.groups import cross_entropy_terms, direction
from fairmed.metrics.multiplicity import ADJUSTMENTS, adjust_pvalues
from fairmed.metrics.validate import as_binary_labels, as_probabilities, require_columns
from fairmed.schema import RESULT_COLUMNS, Y_SCORE, Y_TRUE

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
MAX_LEVELS = 50  # more distinct values than this: the attribute must be binned or left out
AUTO_BIN_ABOVE = 12  # a numeric attribute with more distinct values is cut at its quartiles
SLICES_TABLE = "slices"  # OUT/tables/slices.parquet: the tested slices ("Where it fails" section)
CANDIDATES_TABLE = "slice_candidates"  # OUT/tables/slice_candidates.parquet: every slice searched
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


# ------------------------------------------------------------------------------ attributes
@dataclass(frozen=True)
class Attribute:
    """One attribute as codes: 0..L-1 are its values (slice conditions); L marks rows no value
    claims (excluded by the GroupSpec), which belong to no slice of this attribute."""

    name: str
    levels: list[str]
    codes: np.ndarray  # int64, 0..len(levels)


def quartile_edges(values: np.ndarray) -> list[float]:
    """Cut points at the quartiles, rounded to 2 significant digits, distinct and increasing."""
    finite = values[np.isfinite(values)]
    edges = []
    for q in np.quantile(finite, [0.25, 0.5, 0.75]):
        rounded = float(f"{q:.2g}") if q != 0 else 0.0
        if rounded > finite.min() and (not edges or rounded > edges[-1]):
            edges.append(rounded)
    return edges or [float(np.median(finite))]


def attribute_spec(text: str | GroupSpec, table: pd.DataFrame) -> GroupSpec:
    """The GroupSpec of one ``--attr``, with missing values as a value of their own; a numeric
    column with many distinct values and no edges is cut at its quartiles."""
    spec = text if isinstance(text, GroupSpec) else GroupSpec.parse(str(text))
    if spec.intersect is not None:
        raise SpecError(
            f"slices: attribute {spec.name!r} is an intersection; give its parts as separate "
            "attributes (the search builds the conjunctions)"
        )
    require_columns(table, [str(spec.attribute)], "predictions (slice attributes)")
    raw = table[str(spec.attribute)]
    if spec.levels is None and spec.edges is None:
        numeric = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)
        present = raw[~is_missing(raw)]
        if numeric and present.nunique() > AUTO_BIN_ABOVE:
            edges = quartile_edges(present.to_numpy(dtype=float))
            spec = GroupSpec(attribute=spec.attribute, edges=edges, label=spec.label)
    return spec.model_copy(update={"missing": "group"})


def encode_attributes(table: pd.DataFrame, attrs: list[str | GroupSpec]) -> list[Attribute]:
    """Each attribute's codes via its GroupSpec (applied once to the distinct raw values)."""
    out = []
    for text in attrs:
        spec = attribute_spec(text, table)
        col = str(spec.attribute)
        inverse, _ = pd.factorize(table[col], use_na_sentinel=False)  # hashing: no string sort
        _, first = np.unique(inverse, return_index=True)
        groups = spec.assign(table.iloc[first]).groups
        levels = [str(c) for c in groups.cat.categories]
        codes = groups.cat.codes.to_numpy(dtype=np.int64)
        codes[codes < 0] = len(levels)
        if len(levels) > MAX_LEVELS:
            raise SpecError(
                f"slices: attribute {spec.name!r} has {len(levels)} values (at most {MAX_LEVELS}); "
                f"bin it ('{col}:EDGES', e.g. '{col}:40,60') or leave it out"
            )
        out.append(Attribute(spec.name, levels, codes[inverse]))
    names = [a.name for a in out]
    if len(set(names)) != len(names):
        raise SpecError(f"slices: attribute names must be distinct, got {names}")
    return out


# ------------------------------------------------------------------------------ statistics
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
        a, va = delong(y[member], s[member])
        b, vb = delong(y[~member], s[~member])
        out = {"n": int(member.sum()), "n_rest": int((~member).sum())}
        if np.isnan(a) or np.isnan(b):
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


def delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """AUC (mid-ranks) and its DeLong variance var(V10)/P + var(V01)/N; NaN without both classes."""
    from scipy.stats import rankdata

    pos, neg = s[y == 1], s[y == 0]
    n1, n0 = len(pos), len(neg)
    if n1 < 2 or n0 < 2:
        return float("nan"), float("nan")
    r_all = rankdata(np.concatenate([pos, neg]))
    r_pos, r_neg = rankdata(pos), rankdata(neg)
    v10 = (r_all[:n1] - r_pos) / n0  # per positive: share of negatives below (ties half)
    v01 = 1 - (r_all[n1:] - r_neg) / n1  # per negative: share of positives above
    auc = float(v10.mean())
    return auc, float(v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0)


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


# ------------------------------------------------------------------------------ the search
@dataclass
class _Cube:
    attrs: tuple[int, ...]
    shape: tuple[int, ...]
    stats: np.ndarray  # (*shape, D)
    alive: np.ndarray  # (*shape,) bool: meets the support rules and its bound reaches tau


@dataclass
class SearchResult:
    """The slices met by the search on one half: every candidate and how much was pruned."""

    candidates: pd.DataFrame  # conditions, depth, support, positives, z, effect
    cubes: dict[tuple[int, ...], _Cube]
    total: np.ndarray
    n_subsets: int
    n_pruned: int  # attribute sets skipped: no cell had every parent alive
    n_cells_pruned: int  # cells meeting the support rules but left out by a parent's bound
    codes: list[np.ndarray]  # attribute codes of the searched rows
    kinds: np.ndarray
    n_kinds: int
    weights: np.ndarray | None

    def member(self, attrs: tuple[int, ...], values: tuple[int, ...]) -> np.ndarray:
        """Searched rows in the slice."""
        return np.logical_and.reduce([self.codes[a] == v for a, v in zip(attrs, values)])

    def stats_of(self, stat, rows: np.ndarray) -> np.ndarray:
        """The additive statistics of any set of searched rows (a boolean mask)."""
        counts = np.bincount(self.kinds[rows], minlength=self.n_kinds)[None, :]
        sums = None if self.weights is None else self.weights[:, rows].sum(1)[None, :]
        return stat.reduce(counts, sums)[0]


def search(
    attributes: list[Attribute],
    stat: MeanStatistic | AucStatistic,
    idx: np.ndarray,
    depth: int = 3,
    min_support: int = 30,
    min_positives: int = 5,
    min_metric_rows: int = 5,
    pool: int = 200,
) -> SearchResult:
    """Every conjunction of up to ``depth`` attribute values over the rows ``idx`` that meets the
    support rules, with its z against the rest; attribute sets that cannot beat the ``pool``-th
    best z (by the parents' optimistic bounds) are skipped."""
    kinds, n_kinds, weights = stat.prepare(idx)
    codes = [a.codes[idx] for a in attributes]
    sizes = [len(a.levels) + 1 for a in attributes]
    counts = np.bincount(kinds, minlength=n_kinds)[None, :]
    total = stat.reduce(counts, None if weights is None else weights.sum(1)[None, :])[0]
    cubes: dict[tuple[int, ...], _Cube] = {}
    frames = []
    tau = -np.inf
    n_subsets = n_pruned = n_cells_pruned = 0
    for d in range(1, depth + 1):
        for attrs in itertools.combinations(range(len(attributes)), d):
            n_subsets += 1
            shape = tuple(sizes[a] for a in attrs)
            parents_alive = _parents_alive(cubes, attrs, shape)
            if parents_alive is not None and not parents_alive.any():
                n_pruned += 1
                continue
            code = np.zeros(len(idx), dtype=np.int64)
            for a in attrs:
                code *= sizes[a]
                code += codes[a]
            n_cells = int(np.prod(shape))
            cnt = np.bincount(code * n_kinds + kinds, minlength=n_cells * n_kinds).reshape(n_cells, n_kinds)
            sums = None
            if weights is not None:
                sums = np.column_stack([np.bincount(code, w, minlength=n_cells) for w in weights])
            stats = stat.reduce(cnt, sums).reshape(*shape, -1)
            ok = (
                (stats[..., 0] >= min_support)
                & (stats[..., 1] >= min_positives)
                & (stat.metric_rows(stats) >= min_metric_rows)
                & (stat.metric_rows(total - stats) >= 2)
            )
            ok[_excluded(shape)] = False
            if parents_alive is not None:
                n_cells_pruned += int((ok & ~parents_alive).sum())
                ok &= parents_alive
            z = stat.z(stats, total - stats)
            cube = _Cube(attrs, shape, stats, ok.copy())
            cubes[attrs] = cube
            if ok.any():
                cells = stats[ok]
                frames.append((attrs, np.argwhere(ok), cells, z[ok], stat.effect(cells, total - cells)))
        zs = np.concatenate([f[3] for f in frames]) if frames else np.empty(0)
        if len(zs) >= pool:
            tau = float(np.partition(zs, len(zs) - pool)[len(zs) - pool])
        for cube in cubes.values():  # prune with the bound once tau is known
            if len(cube.attrs) == d:
                cube.alive &= stat.bound(cube.stats) >= tau
    found = pd.DataFrame(
        {
            "attrs": [f[0] for f in frames for _ in f[1]],
            "values": [tuple(map(int, w)) for f in frames for w in f[1]],
            "depth": np.concatenate([np.full(len(f[1]), len(f[0])) for f in frames] or [np.empty(0, int)]),
            "support": np.concatenate([f[2][:, 0] for f in frames] or [np.empty(0)]).astype(np.int64),
            "positives": np.concatenate([f[2][:, 1] for f in frames] or [np.empty(0)]).astype(np.int64),
            "z": np.concatenate([f[3] for f in frames] or [np.empty(0)]),
            "effect": np.concatenate([f[4] for f in frames] or [np.empty(0)]),
        }
    )
    return SearchResult(
        found, cubes, total, n_subsets, n_pruned, n_cells_pruned, codes, kinds, n_kinds, weights
    )


def _excluded(shape: tuple[int, ...]) -> np.ndarray:
    """Cells with any coordinate at the 'no value' level (the last one of each axis)."""
    grids = np.indices(shape)
    return np.logical_or.reduce([g == s - 1 for g, s in zip(grids, shape)])


def _parents_alive(cubes: dict, attrs: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray | None:
    """Cells of ``attrs`` whose every parent (one attribute fewer) is alive; None at depth 1."""
    if len(attrs) == 1:
        return None
    alive = np.ones(shape, bool)
    for drop in range(len(attrs)):
        parent = attrs[:drop] + attrs[drop + 1 :]
        if parent not in cubes:
            return np.zeros(shape, bool)
        alive &= np.expand_dims(cubes[parent].alive, drop)
    return alive


def fold_redundant(
    found: SearchResult, stat: MeanStatistic | AucStatistic, top: int, fold_z: float
) -> pd.DataFrame:
    """The best ``top`` candidates (z > 0), best first, without redundant ones:

    - a slice is folded into a parent (one condition fewer) when, within that parent, it is not
      worse than the parent's other rows (z below ``fold_z``): the condition changes nothing;
    - a slice is explained by a better slice already kept that overlaps it when, without the
      shared rows, it is no longer worse than the rows outside it (z below ``fold_z``); this drops
      the parents and siblings of a failing slice that are bad only through its rows.
    """
    ranked = found.candidates[found.candidates["z"] > 0].sort_values("z", ascending=False, kind="stable")
    kept: list[dict] = []
    masks: list[np.ndarray] = []
    for row in ranked.itertuples(index=False):
        if len(kept) == top:
            break
        stats = found.cubes[row.attrs].stats[row.values]
        if _folded(found, stat, row, stats, fold_z):
            continue
        member = found.member(row.attrs, row.values)
        explained = False
        for other in masks:
            shared = member & other
            if shared.any():
                alone = found.stats_of(stat, member & ~other)
                if stat.metric_rows(alone) < 1 or not stat.z(alone, found.total - stats) >= fold_z:
                    explained = True
                    break
        if not explained:
            kept.append(row._asdict())
            masks.append(member)
    return pd.DataFrame(kept, columns=list(ranked.columns))


def _folded(found: SearchResult, stat, row, stats: np.ndarray, fold_z: float) -> bool:
    """Whether some parent of the slice holds other rows that are as bad as the slice's."""
    for drop in range(len(row.attrs)) if row.depth > 1 else ():
        parent = found.cubes[row.attrs[:drop] + row.attrs[drop + 1 :]]
        rest = parent.stats[row.values[:drop] + row.values[drop + 1 :]] - stats
        if stat.metric_rows(rest) < 1 or not stat.z(stats, rest) >= fold_z:
            return True
    return False


# ------------------------------------------------------------------------------ the API
@dataclass
class SliceResult:
    """The top slices, tested on the held-out half, and the search's candidates."""

    slices: pd.DataFrame
    candidates: pd.DataFrame
    n_tested: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Results-shaped rows: per slice, the metric in the slice and ``<metric>_vs_rest`` (slice
        minus rest), both measured on the held-out half; plus p-values, rank, depth, n_tested."""
        metric = self.options["metric"]
        s = self.slices
        base = {
            "attribute": s["attribute"],
            "group": s["slice"],
            "p_value": s["p_value"],
            "p_adjusted": s["p_adjusted"],
            "rank": s["rank"],
            "depth": s["depth"],
            "support": s["support"],
            "n_tested": self.n_tested,
        }
        value_rows = pd.DataFrame(
            base | {"metric": metric, "value": s["value"], "ci_low": np.nan, "ci_high": np.nan, "n": s["n"]}
        )
        value_rows[["ci_low", "ci_high"]] = np.column_stack([s["value_ci_low"], s["value_ci_high"]])
        effect_rows = pd.DataFrame(
            base
            | {
                "metric": f"{metric}_vs_rest",
                "value": s["effect"],
                "ci_low": s["ci_low"],
                "ci_high": s["ci_high"],
                "n": s["n"],
            }
        )
        frame = pd.concat([value_rows, effect_rows]).sort_values(["rank", "metric"], kind="stable")
        extra = [c for c in frame.columns if c not in RESULT_COLUMNS]
        return frame[[*RESULT_COLUMNS, *extra]].reset_index(drop=True)

    def report_table(self) -> pd.DataFrame:
        """The tested slices with the search's settings on every row (what the report reads)."""
        o = self.options
        keep = (
            "metric",
            "depth",
            "min_support",
            "top",
            "alpha",
            "adjust",
            "unit",
            "n_search_rows",
            "n_test_rows",
        )
        return self.slices.rename(columns={"depth": "conditions"}).assign(
            n_tested=self.n_tested, **{k if k != "depth" else "max_depth": o[k] for k in keep}
        )

    def to_markdown(self, digits: int = 3) -> str:
        from fairmed.metrics.audit import md_table

        o = self.options
        head = (
            f"### Where {o['metric']} is worst: top {len(self.slices)} of {self.n_tested} slices searched "
            f"(depth <= {o['depth']}, >= {o['min_support']} rows) on the discovery half; effect = slice "
            f"minus rest and p ({o['adjust']} over the {len(self.slices)} tested) on the held-out half"
        )
        if self.slices.empty:
            return head + "\n(no slice is worse than the rest on the discovery half)\n"
        cols = [
            "rank",
            "slice",
            "support",
            "n",
            "value",
            "rest_value",
            "effect",
            "ci",
            "p_value",
            "p_adjusted",
        ]
        cells = []
        for r in self.slices.itertuples(index=False):
            f = _fmt(digits)
            cells.append(
                [
                    str(r.rank),
                    r.slice,
                    str(r.support),
                    str(r.n),
                    f(r.value),
                    f(r.rest_value),
                    f(r.effect),
                    f"[{f(r.ci_low)}, {f(r.ci_high)}]",
                    f"{r.p_value:.2g}",
                    f"{r.p_adjusted:.2g}" + (" *" if r.significant else ""),
                ]
            )
        return head + "\n" + md_table(cols, cells) + f"\n* p_adjusted <= {o['alpha']}\n"


def _fmt(digits: int):
    return lambda x: "NaN" if x != x else f"{x:.{digits}g}"


def slice_name(attributes: list[Attribute], attrs: tuple[int, ...], values: tuple[int, ...]) -> str:
    """'sex=female & age>=60': attribute, then '=' (or nothing before a bin's '<'/'>=') and value."""
    parts = []
    for a, v in zip(attrs, values):
        level = attributes[a].levels[v]
        sep = "" if level[:1] in "<>" and level != MISSING_GROUP else "="
        parts.append(f"{attributes[a].name}{sep}{level}")
    return " & ".join(parts)


def split_halves(table: pd.DataFrame, unit: str | None, discovery: float, seed: int) -> np.ndarray:
    """True for rows of the discovery half: whole units (patients) go to one half."""
    rng = np.random.default_rng(seed)
    if unit is None:
        keys = np.arange(len(table))
    else:
        require_columns(table, [unit], "predictions (split unit)")
        keys = pd.factorize(table[unit].astype("string"))[0]
    n_units = int(keys.max()) + 1
    chosen = rng.permutation(n_units) < round(discovery * n_units)
    return chosen[keys]


def find_slices(
    predictions: pd.DataFrame,
    attrs: list[str | GroupSpec],
    metric: str = "tpr",
    *,
    label: str = Y_TRUE,
    score: str = Y_SCORE,
    pred: str | None = None,
    threshold: float = 0.5,
    worse: Literal["higher", "lower"] | None = None,
    depth: int = 3,
    min_support: int = 30,
    min_positives: int = 5,
    top: int = 10,
    alpha: float = 0.05,
    adjust: str = "holm",
    discovery: float = 0.5,
    unit: str | None = "auto",
    fold_z: float = 1.96,
    ci: float = 0.95,
    seed: int = 0,
) -> SliceResult:
    """Search slices where ``metric`` is worse than in the rest, and test the ``top`` honestly.

    The search runs on a random ``discovery`` share of the units (``unit``: a column such as
    ``patient_id``; "auto" uses ``patient_id`` when present, else rows); the ``top`` slices are
    measured and tested on the other units, with ``adjust`` (Holm) over those ``top`` p-values.
    ``min_support`` counts rows of the search half; ``min_positives`` its positives (when there
    are labels) and the rows the metric is defined on.
    """
    if not isinstance(predictions, pd.DataFrame) or len(predictions) == 0:
        raise InputError("slices: predictions must be a non-empty table")
    if depth < 1 or top < 1 or min_support < 1:
        raise SpecError(f"slices: depth, top and min_support must be >= 1, got {depth}, {top}, {min_support}")
    if not 0 < discovery < 1:
        raise SpecError(f"slices: discovery share must be in (0, 1), got {discovery}")
    if adjust not in ADJUSTMENTS:
        raise SpecError(f"slices: adjust {adjust!r}: expected one of {', '.join(ADJUSTMENTS)}")
    if not attrs:
        raise SpecError("slices: give at least one attribute (e.g. attrs=['sex', 'age'])")
    table = predictions.reset_index(drop=True)
    attributes = encode_attributes(table, list(attrs))
    depth = min(depth, len(attributes))
    stat = make_statistic(table, metric, label, score, pred, threshold, worse)
    if unit == "auto":
        unit = "patient_id" if "patient_id" in table.columns else None
    half = split_halves(table, unit, discovery, seed)
    find_idx, test_idx = np.flatnonzero(half), np.flatnonzero(~half)
    if len(test_idx) < 2 * min_support:
        raise InputError(f"slices: {len(test_idx)} held-out rows; too few to test slices of {min_support}")
    found = search(
        attributes, stat, find_idx, depth, min_support, min_positives, min_positives, pool=max(200, 10 * top)
    )
    best = fold_redundant(found, stat, top, fold_z)
    rows = []
    for rank, row in enumerate(best.itertuples(index=False), start=1):
        member_all = np.logical_and.reduce([attributes[a].codes == v for a, v in zip(row.attrs, row.values)])
        tested = stat.test(member_all[test_idx], test_idx, ci)
        rows.append(
            {
                "rank": rank,
                "slice": slice_name(attributes, row.attrs, row.values),
                "attribute": "*".join(attributes[a].name for a in row.attrs),
                "depth": row.depth,
                "support": int(member_all.sum()),
                **tested,
                "discovery_effect": row.effect,
                "discovery_z": row.z,
            }
        )
    slices = pd.DataFrame(rows)
    if slices.empty:
        columns = ["rank", "slice", "attribute", "depth", "support", "n", "n_rest", *TEST_FIELDS]
        slices = pd.DataFrame(columns=[*columns, "discovery_effect", "discovery_z"])
    slices = slices.rename(columns={"p": "p_value"})
    slices["p_adjusted"] = adjust_pvalues(slices["p_value"].to_numpy(dtype=float), adjust)
    slices["significant"] = slices["p_adjusted"] <= alpha
    candidates = found.candidates.assign(
        slice=[
            slice_name(attributes, a, v)
            for a, v in zip(found.candidates["attrs"], found.candidates["values"])
        ]
    )[["slice", "depth", "support", "positives", "effect", "z"]]
    options = {
        "metric": metric,
        "attrs": [a.name for a in attributes],
        "depth": depth,
        "min_support": min_support,
        "min_positives": min_positives,
        "top": top,
        "alpha": alpha,
        "adjust": adjust,
        "discovery": discovery,
        "unit": unit or "row",
        "fold_z": fold_z,
        "ci": ci,
        "seed": seed,
        "n_search_rows": len(find_idx),
        "n_test_rows": len(test_idx),
        "attribute_sets": found.n_subsets,
        "attribute_sets_pruned": found.n_pruned,
        "slices_pruned": found.n_cells_pruned,
    }
    return SliceResult(slices.reset_index(drop=True), candidates, len(found.candidates), options)
