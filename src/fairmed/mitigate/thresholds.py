"""Post-processing: per-group decision rules fitted on validation Predictions.

Two mitigations that need nothing but a model's scores, so they apply to any model
(the review paper's "post-processing" family):

- :func:`fit_thresholds` — per-group thresholds meeting a target: ``equal_opportunity``
  (equal TPR), ``demographic_parity`` (equal selection rate), ``equalized_odds`` (equal
  TPR *and* FPR; Hardt, Price & Srebro 2016, with randomised rules), or a fixed ``tpr`` /
  ``fpr`` per group. The common operating point maximises validation accuracy.
- :func:`fit_reject_option` — reject-option classification (Kamiran, Karim & Zhang 2012):
  inside a band ``|score - threshold| <= theta`` decisions go to the favourable label for
  the unprivileged groups and against it for the privileged group; ``theta`` is tuned on
  validation to minimise a criterion gap within an allowed accuracy loss.
- :func:`fit_calibrated_eqodds` — calibrated equalized odds (Pleiss, Raghavan, Wu, Kleinberg &
  Weinberger 2017): each group's calibrated score is replaced, for a random share of its rows, by
  the group's base rate (which stays calibrated), so that the groups' generalized FPR, FNR or a
  weighted cost become equal; decisions threshold the mixed score.

A fitted rule is a :class:`GroupRules`: per group, a mixture of deterministic components
(``score >= threshold`` or a constant decision) with weights summing to one. A single
component is an ordinary threshold; mixtures realise the randomised rules Hardt et al.
need. Rules serialise to JSON. numpy only: no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import InputError, SpecError
from fairmed.io import write_text
from fairmed.metrics.roc import roc_vertices

Target = Literal["equal_opportunity", "demographic_parity", "equalized_odds", "tpr", "fpr"]
Criterion = Literal["demographic_parity", "equal_opportunity"]
CostConstraint = Literal["fpr", "fnr", "weighted"]


class Component(BaseModel):
    """One deterministic decision: ``score >= threshold`` (or a constant 0/1 when threshold is None)."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(ge=0.0, le=1.0)
    threshold: float | None = None
    constant: Literal[0, 1] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Component:
        if (self.threshold is None) == (self.constant is None):
            raise SpecError("a rule component needs exactly one of 'threshold' or 'constant'")
        return self


class GroupRule(BaseModel):
    """A group's decision rule: a mixture of components (weights sum to 1)."""

    model_config = ConfigDict(extra="forbid")

    components: list[Component]

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> GroupRule:
        total = sum(c.weight for c in self.components)
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise SpecError(f"rule component weights sum to {total:.6g}, expected 1")
        return self

    @classmethod
    def threshold(cls, value: float) -> GroupRule:
        return cls(components=[Component(weight=1.0, threshold=float(value))])

    @property
    def deterministic(self) -> bool:
        return len([c for c in self.components if c.weight > 0]) == 1

    def positive_probability(self, scores: np.ndarray) -> np.ndarray:
        """P(decision = 1 | score) under this rule."""
        p = np.zeros(len(scores), dtype=float)
        for c in self.components:
            if c.threshold is not None:
                p += c.weight * (scores >= c.threshold)
            else:
                p += c.weight * float(c.constant)
        return np.clip(p, 0.0, 1.0)


class GroupRules(BaseModel):
    """Fitted per-group rules for one grouping, applicable to new Predictions."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["thresholds", "reject_option", "calibrated_eqodds"]
    target: str
    attribute: str
    rules: dict[str, GroupRule]
    default: GroupRule = Field(description="rule for rows whose group was not seen at fit time")
    band: float | None = None
    privileged: list[str] | None = None
    favourable: Literal[0, 1] = 1
    base_threshold: float = 0.5
    base_rates: dict[str, float] | None = Field(None, description="calibrated_eqodds: each group's base rate")
    mix_rates: dict[str, float] | None = Field(
        None, description="calibrated_eqodds: the share of each group's rows given its base rate"
    )
    fit_summary: dict[str, float] = Field(default_factory=dict)

    # ----------------------------------------------------------- application
    def positive_probability(self, scores: np.ndarray, groups: Sequence) -> np.ndarray:
        scores = _check_scores(scores)
        groups = np.asarray(pd.Series(groups).astype(object).fillna("").astype(str))
        if len(groups) != len(scores):
            raise InputError(f"{len(scores)} scores but {len(groups)} group values")
        if self.method == "reject_option":
            return _reject_option_decisions(self, scores, groups).astype(float)
        p = self.default.positive_probability(scores)
        for name, rule in self.rules.items():
            mask = groups == name
            if mask.any():
                p[mask] = rule.positive_probability(scores[mask])
        return p

    def mixed_scores(self, scores: np.ndarray, groups: Sequence, seed: int = 0) -> np.ndarray:
        """Calibrated equalized odds' scores: each row of a group with mix rate m takes the group's base
        rate with probability m (a seeded draw per row), else keeps its score; rows of a group not seen
        at fit time keep theirs."""
        if self.method != "calibrated_eqodds" or self.mix_rates is None or self.base_rates is None:
            raise InputError(f"mixed scores need calibrated_eqodds rules, got {self.method}")
        s = _check_scores(scores)
        g = np.asarray(pd.Series(groups).astype(object).fillna("").astype(str))
        if len(g) != len(s):
            raise InputError(f"{len(s)} scores but {len(g)} group values")
        u = np.random.default_rng(seed).random(len(s))
        out = s.copy()
        for name, mix in self.mix_rates.items():
            take = (g == name) & (u < mix)
            out[take] = self.base_rates[name]
        return out

    def predict(self, scores: np.ndarray, groups: Sequence, seed: int = 0) -> np.ndarray:
        """0/1 decisions; randomised rules draw with a seeded generator (reproducible)."""
        if self.method == "calibrated_eqodds":
            return (self.mixed_scores(scores, groups, seed) >= self.base_threshold).astype(np.int64)
        p = self.positive_probability(scores, groups)
        if np.all((p == 0.0) | (p == 1.0)):
            return p.astype(np.int64)
        u = np.random.default_rng(seed).random(len(p))
        return (u < p).astype(np.int64)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        return write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GroupRules:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: rules file not found")
        try:
            return cls.model_validate(json.loads(p.read_text(encoding="utf-8")))
        except (ValueError, SpecError) as exc:
            first = str(exc).splitlines()[0]
            raise InputError(f"{p}: not a fairmed rules file ({first})") from None


# --------------------------------------------------------------------- inputs
def _check_scores(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise InputError(f"scores must be one-dimensional, got shape {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise InputError(f"scores are NaN or infinite at rows {np.flatnonzero(bad)[:5].tolist()}")
    return s


def _check_fit_inputs(scores, y, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    s = _check_scores(scores)
    y = np.asarray(y)
    if len(y) != len(s):
        raise InputError(f"{len(s)} scores but {len(y)} labels")
    if not np.isin(y, [0, 1]).all():
        bad = np.flatnonzero(~np.isin(y, [0, 1]))[:5].tolist()
        raise InputError(f"labels must be 0/1 for threshold fitting; bad values at rows {bad}")
    g = pd.Series(groups).astype(object)
    if len(g) != len(s):
        raise InputError(f"{len(s)} scores but {len(g)} group values")
    keep = g.notna().to_numpy()
    names = sorted(pd.unique(g[keep].astype(str)))
    if len(names) < 2:
        raise InputError(f"need at least two groups to fit per-group rules, found {names}")
    return s[keep], y[keep].astype(np.int64), g[keep].astype(str).to_numpy(), names


# ---------------------------------------------------------- ROC per group (vertices: fairmed.metrics.roc)
def upper_hull(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """The ROC convex hull (upper-left boundary) vertices, by increasing FPR."""
    keep: list[int] = []
    for i in range(len(fpr)):  # monotone chain over ROC vertices (not samples)
        while len(keep) >= 2:
            a, b = keep[-2], keep[-1]
            cross = (fpr[b] - fpr[a]) * (tpr[i] - tpr[a]) - (tpr[b] - tpr[a]) * (fpr[i] - fpr[a])
            if cross >= 0:
                keep.pop()
            else:
                break
        if keep and fpr[i] == fpr[keep[-1]]:
            if tpr[i] >= tpr[keep[-1]]:
                keep[-1] = i
            continue
        keep.append(i)
    idx = np.asarray(keep)
    return fpr[idx], tpr[idx], thresholds[idx]


# -------------------------------------------------------------- thresholds
def fit_thresholds(
    scores,
    y,
    groups,
    target: Target = "equal_opportunity",
    *,
    value: float | None = None,
    randomize: bool = True,
    tolerance: float = 0.02,
    attribute: str = "group",
) -> GroupRules:
    """Fit per-group rules on validation data so that ``target`` holds.

    ``equal_opportunity`` / ``demographic_parity``: a common TPR / selection rate chosen to
    maximise accuracy; with ``randomize`` (default, as Hardt et al.) each group hits the rate
    exactly by mixing two thresholds of its concave (count, correct) hull; otherwise each group
    uses one threshold and the realised gap stays within ``tolerance``. ``equalized_odds``:
    Hardt et al.'s randomised rules at the common (FPR, TPR) point under every group's ROC hull
    that maximises accuracy. ``tpr`` / ``fpr``: each group at the given rate (``value``).
    """
    s, yy, g, names = _check_fit_inputs(scores, y, groups)
    if target in {"tpr", "fpr"}:
        if value is None or not 0.0 <= value <= 1.0:
            raise SpecError(f"target {target!r} needs a rate value in [0, 1], got {value}")
        rules = {
            n: GroupRule.threshold(_threshold_for_rate(s[g == n], yy[g == n], target, value)) for n in names
        }
    elif target in {"equal_opportunity", "demographic_parity"}:
        rules = _fit_common_rate(s, yy, g, names, target, randomize, tolerance)
    elif target == "equalized_odds":
        rules = _fit_equalized_odds(s, yy, g, names)
    else:
        raise SpecError(
            f"unknown target {target!r}: expected equal_opportunity, demographic_parity, equalized_odds, tpr or fpr"
        )
    fitted = GroupRules(
        method="thresholds", target=target, attribute=attribute, rules=rules, default=GroupRule.threshold(0.5)
    )
    fitted.fit_summary = _summary(fitted, s, yy, g)
    return fitted


def _threshold_for_rate(s: np.ndarray, y: np.ndarray, target: str, value: float) -> float:
    """Largest threshold whose TPR (or FPR) in this group reaches ``value``."""
    pool = np.sort(s[y == 1] if target == "tpr" else s[y == 0])[::-1]
    if len(pool) == 0:
        raise InputError(
            f"a group has no {'positives' if target == 'tpr' else 'negatives'} to set a {target}"
        )
    k = int(math.ceil(value * len(pool) - 1e-12))
    return math.inf if k == 0 else float(pool[k - 1])


def _fit_common_rate(s, y, g, names, target, randomize: bool, tolerance: float) -> dict[str, GroupRule]:
    """Search the common rate (TPR or selection rate) over every group's achievable rates.

    With ``randomize`` (Hardt et al.) each group hits the rate exactly by mixing the two
    thresholds at the ends of its segment of the concave hull of (items selected, correct
    decisions), as fairlearn's ThresholdOptimizer does; the summed accuracy is then concave
    piecewise linear in the rate, so its maximum lies on one of the candidates. Without it,
    each group takes the threshold reaching the rate from above and the most accurate
    candidate whose realised gap is within ``tolerance`` wins. Ties prefer fewer randomised
    groups, then the lower rate.
    """
    pools, negs, poss = [], [], []
    for n in names:
        m = g == n
        pool = s[m & (y == 1)] if target == "equal_opportunity" else s[m]
        if len(pool) == 0:
            raise InputError(f"group {n!r} has no positives: equal opportunity is undefined for it")
        pools.append(np.sort(pool)[::-1])
        negs.append(np.sort(s[m & (y == 0)]))
        poss.append(np.sort(s[m & (y == 1)]))
    rates = np.unique(np.concatenate([np.arange(len(p) + 1) / len(p) for p in pools]))  # 0 included
    correct = np.zeros(len(rates))
    n_random = np.zeros(len(rates))
    realised = []
    plans = []
    for pool, neg, pos in zip(pools, negs, poss):
        plan = (_mixed_plan if randomize else _rounded_plan)(pool, pos, neg, rates * len(pool))
        lo, hi, frac, group_correct, group_rate = plan
        correct += group_correct
        n_random += (frac > 0) & (frac < 1)
        plans.append((lo, hi, frac))
        realised.append(group_rate)
    score = np.round(correct, 9) - 1e-6 * n_random
    if not randomize:
        gaps = np.ptp(np.stack(realised), axis=0)
        allowed = gaps <= max(tolerance, gaps.min()) + 1e-12
        score = np.where(allowed, score, -np.inf)
    i = int(np.argmax(score))
    return {n: _mixture_rule(lo[i], hi[i], frac[i]) for n, (lo, hi, frac) in zip(names, plans)}


def _mixed_plan(pool, pos, neg, need: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per rate: mix the hull vertices j1 <= need <= j2 of (count, correct) to select ``need`` exactly."""
    counts = np.arange(len(pool) + 1)
    per_count = _correct(pos, neg, _threshold_at(pool, counts))
    vertices = upper_hull(counts.astype(float), per_count, counts)[2].astype(int)
    seg = np.clip(np.searchsorted(vertices, need + 1e-9, side="right") - 1, 0, len(vertices) - 2)
    j1, j2 = vertices[seg], vertices[seg + 1]
    frac = (need - j1) / (j2 - j1)
    frac = np.where(frac < 1e-9, 0.0, np.where(frac > 1 - 1e-9, 1.0, frac))
    correct = (1 - frac) * per_count[j1] + frac * per_count[j2]
    return _threshold_at(pool, j1), _threshold_at(pool, j2), frac, correct, need / len(pool)


def _rounded_plan(pool, pos, neg, need: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per rate: one threshold selecting ``ceil(need)`` items (the rate reached from above)."""
    k_up = np.ceil(need - 1e-9).astype(int)
    lo = _threshold_at(pool, k_up)
    frac = np.zeros(len(need))
    return lo, lo, frac, _correct(pos, neg, lo), np.minimum(k_up, len(pool)) / len(pool)


def _mixture_rule(lo: float, hi: float, frac: float) -> GroupRule:
    """``score >= lo`` with weight 1 - frac, ``score >= hi`` with weight frac (inf: never positive)."""
    return GroupRule(
        components=[
            Component(weight=w, constant=0) if t == np.inf else Component(weight=w, threshold=float(t))
            for t, w in ((lo, 1 - frac), (hi, frac))
            if w > 0
        ]
    )


def _threshold_at(pool_desc: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Threshold selecting the ``count`` highest scores of a descending pool (inf for none)."""
    count = np.clip(count, 0, len(pool_desc))
    return np.where(count == 0, np.inf, pool_desc[np.maximum(count, 1) - 1])


def _correct(pos_sorted: np.ndarray, neg_sorted: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Correct decisions of ``score >= t`` for each t, from sorted positives and negatives."""
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, thresholds, side="left")
    tn = np.searchsorted(neg_sorted, thresholds, side="left")
    return (tp + tn).astype(float)


def _fit_equalized_odds(s, y, g, names) -> dict[str, GroupRule]:
    hulls = []
    n_pos = n_neg = 0
    for n in names:
        m = g == n
        if y[m].min() == y[m].max():
            raise InputError(f"group {n!r} has a single class: equalized odds needs positives and negatives")
        hulls.append(upper_hull(*roc_vertices(s[m], y[m])))
        n_pos += int(y[m].sum())
        n_neg += int((1 - y[m]).sum())
    grid = np.unique(np.concatenate([h[0] for h in hulls]))
    curves = np.stack([np.interp(grid, h[0], h[1]) for h in hulls])
    crossings = _pairwise_crossings(grid, curves)
    grid = np.unique(np.concatenate([grid, crossings]))
    common_tpr = np.min(np.stack([np.interp(grid, h[0], h[1]) for h in hulls]), axis=0)
    accuracy = (n_pos * common_tpr + n_neg * (1.0 - grid)) / (n_pos + n_neg)
    i = int(np.argmax(accuracy))
    f, t = float(grid[i]), float(common_tpr[i])
    return {n: _realise_point(h, f, t) for n, h in zip(names, hulls)}


def _pairwise_crossings(grid: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """FPRs where two piecewise-linear hulls cross between consecutive grid points."""
    out = []
    for a in range(len(curves)):
        d = curves[a][None, :] - curves[a + 1 :]
        s0, s1 = d[:, :-1], d[:, 1:]
        cross = (s0 * s1) < 0
        if cross.any():
            r, c = np.nonzero(cross)
            frac = s0[r, c] / (s0[r, c] - s1[r, c])
            out.append(grid[c] + frac * (grid[c + 1] - grid[c]))
    return np.concatenate(out) if out else np.empty(0)


def _realise_point(hull, f: float, t: float) -> GroupRule:
    """Mix two hull vertices (FPR f on the hull) with random guessing at rate f to reach (f, t)."""
    hf, ht, hth = hull
    j = int(np.clip(np.searchsorted(hf, f, side="left"), 1, len(hf) - 1))
    f1, f2 = hf[j - 1], hf[j]
    alpha = 1.0 if f2 == f1 else (f2 - f) / (f2 - f1)
    h = alpha * ht[j - 1] + (1 - alpha) * ht[j]
    lam = 1.0 if h - f <= 1e-12 else min(1.0, max(0.0, (t - f) / (h - f)))
    weights: dict[tuple[str, float], float] = {}
    for th, w in ((hth[j - 1], lam * alpha), (hth[j], lam * (1 - alpha))):
        key = ("const", 0.0) if th == np.inf else ("const", 1.0) if th == -np.inf else ("thr", float(th))
        weights[key] = weights.get(key, 0.0) + w
    for const, w in ((1.0, (1 - lam) * f), (0.0, (1 - lam) * (1 - f))):
        weights[("const", const)] = weights.get(("const", const), 0.0) + w
    comps = [
        Component(weight=w, threshold=v) if kind == "thr" else Component(weight=w, constant=int(v))
        for (kind, v), w in weights.items()
        if w > 1e-12
    ]
    total = sum(c.weight for c in comps)
    for c in comps:
        c.weight /= total
    return GroupRule(components=comps)


# ---------------------------------------------------------- reject option
def fit_reject_option(
    scores,
    y,
    groups,
    criterion: Criterion = "demographic_parity",
    *,
    threshold: float = 0.5,
    privileged: Sequence[str] | None = None,
    favourable: Literal[0, 1] = 1,
    max_accuracy_loss: float = 0.05,
    bands: Sequence[float] | None = None,
    attribute: str = "group",
) -> GroupRules:
    """Kamiran et al.'s reject-option classification with the band tuned on validation.

    The privileged group (default: the group with the highest favourable rate under the
    criterion at ``threshold``) gets the unfavourable label inside the band; every other
    group gets the favourable one. The band is the widest-helping value on the grid
    that minimises the criterion gap while losing at most ``max_accuracy_loss`` accuracy.
    """
    s, yy, g, names = _check_fit_inputs(scores, y, groups)
    base_pred = (s >= threshold).astype(np.int64)
    if privileged is None:
        rates = _group_rates(base_pred, yy, g, names, criterion)
        top = names[int(np.nanargmax(rates if favourable == 1 else -rates))]
        privileged = [top]
    unknown = set(privileged) - set(names)
    if unknown:
        raise InputError(f"privileged group(s) {sorted(unknown)} not found among {names}")
    grid = np.asarray(bands if bands is not None else np.linspace(0.0, 0.5, 51), dtype=float)
    base_acc = float((base_pred == yy).mean())
    best = (np.inf, 0.0)
    candidate = GroupRules(
        method="reject_option",
        target=criterion,
        attribute=attribute,
        rules={n: GroupRule.threshold(threshold) for n in names},
        default=GroupRule.threshold(threshold),
        band=0.0,
        privileged=list(privileged),
        favourable=favourable,
        base_threshold=threshold,
    )
    for band in grid:
        candidate.band = float(band)
        pred = _reject_option_decisions(candidate, s, g)
        if base_acc - float((pred == yy).mean()) > max_accuracy_loss + 1e-12:
            continue
        gap = float(np.nanmax(r := _group_rates(pred, yy, g, names, criterion)) - np.nanmin(r))
        if gap < best[0] - 1e-12:
            best = (gap, float(band))
    candidate.band = best[1]
    candidate.fit_summary = _summary(candidate, s, yy, g)
    return candidate


def _reject_option_decisions(rules: GroupRules, s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Base-threshold decisions, flipped inside the band for groups seen at fit time.

    A row whose group is missing or was not seen at fit time is neither privileged nor
    known to be unprivileged, so it keeps the plain threshold (as with fitted thresholds).
    """
    pred = (s >= rules.base_threshold).astype(np.int64)
    band = rules.band or 0.0
    if band <= 0:
        return pred
    critical = (np.abs(s - rules.base_threshold) <= band) & np.isin(g, list(rules.rules))
    privileged = np.isin(g, rules.privileged or [])
    fav, unfav = rules.favourable, 1 - rules.favourable
    pred[critical & privileged] = unfav
    pred[critical & ~privileged] = fav
    return pred


# ---------------------------------------------------- calibrated equalized odds
def generalized_rates(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(generalized FPR, generalized FNR): the mean score of the negatives and the mean of 1 - score
    of the positives (Pleiss et al.; NaN without negatives / positives)."""
    neg, pos = y == 0, y == 1
    gfpr = float(scores[neg].mean()) if neg.any() else float("nan")
    gfnr = float((1.0 - scores[pos]).mean()) if pos.any() else float("nan")
    return gfpr, gfnr


def calibrated_cost(gfpr: float, gfnr: float, base_rate: float, constraint: CostConstraint) -> float:
    """The cost calibrated equalized odds equalises: the generalized FPR, FNR, or (``weighted``) their
    mean weighted by the shares of negatives and positives, (GFPR (1 - mu) + GFNR mu) / 2, as Pleiss
    et al.'s code and AIF360 compute it."""
    if constraint == "fpr":
        return gfpr
    if constraint == "fnr":
        return gfnr
    return 0.5 * gfpr * (1.0 - base_rate) + 0.5 * gfnr * base_rate


def fit_calibrated_eqodds(
    scores,
    y,
    groups,
    constraint: CostConstraint = "weighted",
    *,
    threshold: float = 0.5,
    attribute: str = "group",
) -> GroupRules:
    """Calibrated equalized odds (Pleiss et al. 2017) fitted on validation scores (assumed calibrated).

    Per group: its base rate mu, the cost of its scores and that of the trivial classifier that
    predicts mu for everyone (under ``constraint``: ``fpr``, ``fnr`` or ``weighted``). The group with
    the highest cost is left alone; every other group g gives a share
    ``(C_max - C_g) / (C_trivial,g - C_g)`` of its rows the score mu_g, which equalises the expected
    costs and keeps each group calibrated. With two groups this is AIF360's
    ``CalibratedEqOddsPostprocessing``; with more, each group is raised to the costliest one. A share
    above 1 (the trivial classifier is cheaper than the costliest group) is capped at 1. Decisions:
    mixed score >= ``threshold``.
    """
    if constraint not in ("fpr", "fnr", "weighted"):
        raise SpecError(f"cost constraint {constraint!r}: expected fpr, fnr or weighted")
    s, yy, g, names = _check_fit_inputs(scores, y, groups)
    base, cost, trivial = {}, {}, {}
    for n in names:
        m = g == n
        if yy[m].min() == yy[m].max():
            raise InputError(
                f"group {n!r} has a single class: calibrated equalized odds needs positives and negatives"
            )
        mu = float(yy[m].mean())
        base[n] = mu
        cost[n] = calibrated_cost(*generalized_rates(s[m], yy[m]), mu, constraint)
        trivial[n] = calibrated_cost(mu, 1.0 - mu, mu, constraint)
    top = max(cost.values())
    mix = {}
    for n in names:
        room = trivial[n] - cost[n]
        mix[n] = 0.0 if cost[n] >= top else float(min(1.0, (top - cost[n]) / room)) if room > 0 else 1.0
    # expected decisions: the score's threshold, or the base rate's constant decision
    rules = {
        n: GroupRule(
            components=[
                c
                for c in (
                    Component(weight=1.0 - mix[n], threshold=float(threshold)),
                    Component(weight=mix[n], constant=int(base[n] >= threshold)),
                )
                if c.weight > 0
            ]
        )
        for n in names
    }
    fitted = GroupRules(
        method="calibrated_eqodds",
        target=constraint,
        attribute=attribute,
        rules=rules,
        default=GroupRule.threshold(threshold),
        base_threshold=threshold,
        base_rates=base,
        mix_rates=mix,
    )
    fitted.fit_summary = _summary(fitted, s, yy, g)
    return fitted


# --------------------------------------------------------------- summaries
def _group_rates(pred, y, g, names, criterion) -> np.ndarray:
    """Selection rate (demographic parity) or TPR (equal opportunity) per group."""
    codes = np.searchsorted(np.asarray(names), g)
    if criterion == "demographic_parity":
        num = np.bincount(codes, weights=pred, minlength=len(names))
        den = np.bincount(codes, minlength=len(names))
    else:
        num = np.bincount(codes, weights=pred * y, minlength=len(names))
        den = np.bincount(codes, weights=y, minlength=len(names))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _summary(rules: GroupRules, s, y, g) -> dict[str, float]:
    """Expected validation accuracy, TPR/FPR/selection-rate gaps of the fitted rules."""
    p = rules.positive_probability(s, g)
    names = sorted(set(g))
    codes = np.searchsorted(np.asarray(names), g)
    k = len(names)
    pos = np.bincount(codes, weights=y, minlength=k)
    neg = np.bincount(codes, weights=1 - y, minlength=k)
    tpr = np.bincount(codes, weights=p * y, minlength=k) / np.maximum(pos, 1)
    fpr = np.bincount(codes, weights=p * (1 - y), minlength=k) / np.maximum(neg, 1)
    sel = np.bincount(codes, weights=p, minlength=k) / np.bincount(codes, minlength=k)
    return {
        "accuracy": float(np.mean(p * y + (1 - p) * (1 - y))),
        "tpr_gap": float(tpr.max() - tpr.min()),
        "fpr_gap": float(fpr.max() - fpr.min()),
        "selection_rate_gap": float(sel.max() - sel.min()),
    }


def apply_rules(
    predictions: pd.DataFrame,
    rules: GroupRules,
    groups: pd.Series,
    score: str = "y_score",
    seed: int = 0,
    column: str = "y_pred",
) -> pd.DataFrame:
    """Return a copy of Predictions with ``column`` holding the post-processed decisions."""
    if score not in predictions.columns:
        raise InputError(f"column {score!r} not found (have: {', '.join(map(str, predictions.columns))})")
    out = predictions.copy()
    out[column] = rules.predict(predictions[score].to_numpy(dtype=float), groups.to_numpy(), seed=seed)
    return out
