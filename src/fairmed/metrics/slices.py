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
- **Statistic** (:mod:`fairmed.metrics.slice_stats`). Mean-type metrics (TPR, FPR, TNR, FNR, accuracy, PPV, NPV, Brier, cross-entropy,
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

from fairmed.data.groups import MISSING_GROUP, GroupSpec, is_missing
from fairmed.errors import InputError, SpecError
from fairmed.metrics.multiplicity import ADJUSTMENTS, adjust_pvalues
from fairmed.metrics.slice_stats import TEST_FIELDS, AucStatistic, MeanStatistic, make_statistic
from fairmed.metrics.validate import require_columns
from fairmed.schema import RESULT_COLUMNS, Y_SCORE, Y_TRUE

MAX_LEVELS = 50  # more distinct values than this: the attribute must be binned or left out
AUTO_BIN_ABOVE = 12  # a numeric attribute with more distinct values is cut at its quartiles
SLICES_TABLE = "slices"  # OUT/tables/slices.parquet: the tested slices ("Where it fails" section)
CANDIDATES_TABLE = "slice_candidates"  # OUT/tables/slice_candidates.parquet: every slice searched


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
        return frame.reindex(columns=[*RESULT_COLUMNS, *extra]).reset_index(drop=True)

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
