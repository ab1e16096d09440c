"""A short terminal summary of a classification study: one line per method, then what mitigation bought.

Reads ``results.parquet`` (the audit of the test split). Per method, one line: overall AUC and
accuracy, each grouping's worst-group gaps (max - min over groups) of AUC/TPR/FPR, and the worst
group's value (with its mean bootstrap interval) of the headline metric: the metric whose gap on
the first grouping (the one the mitigations target) is largest under the baseline (ERM, the first
method). Then the summary: that gap under each mitigation vs the baseline, with the change of
overall accuracy and AUC. Everything is a mean over seeds; per-group tables are in the report.

"narrowed" / "widened" is said only when the change is significant: the exact Wilcoxon signed-rank
test of the per-seed gaps paired by seed (the seed is the unit of replication), Holm-adjusted over
the mitigations, at ``ALPHA``; otherwise the line gives both values and the test's p (and, when it
cannot reach ``ALPHA``, its floor: 2 / 2^seeds times the number of mitigations, e.g. 0.75 for 3 seeds
and 3 mitigations). Measured (``benchmarks/summary_calibration.py``): family-wise false alarms 0.031
at 7 seeds and 0.037 at 10; power 0.88 at 10 seeds for a narrowing of two sd of the per-seed noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairmed.metrics.criteria import CRITERION, GAP_FORMS
from fairmed.schema import OVERALL

METRICS: tuple[str, ...] = ("auc", "tpr", "fpr")
DERIVED = (*GAP_FORMS, CRITERION)  # gap and criterion rows, never a group
NAN = float("nan")
ALPHA = 0.05


@dataclass
class Means:
    """Means over seeds of the audited values the summary reads."""

    groups: pd.DataFrame  # index (method, attribute, group, metric): value, ci_low, ci_high
    gaps: pd.Series  # index (method, attribute, metric): worst-group gap
    overall: pd.Series  # index (method, metric)
    seed_gaps: pd.Series  # index (method, attribute, metric, seed): each seed's worst-group gap

    def gap(self, method: str, attr: str, metric: str) -> float:
        return float(self.gaps.get((method, attr, metric), NAN))

    def total(self, method: str, metric: str) -> float:
        return float(self.overall.get((method, metric), NAN))


def _means(res: pd.DataFrame) -> Means:
    cols = ["value", "ci_low", "ci_high"]
    groups = res[~res["group"].isin(DERIVED)]
    per_group = groups[groups["metric"].isin(METRICS)].groupby(
        ["method", "attribute", "group", "metric"], sort=False
    )[cols]
    diff = res[res["group"] == "difference"]
    gaps = diff.groupby(["method", "attribute", "metric"], sort=False)["value"]
    overall = groups[groups["attribute"] == OVERALL].groupby(["method", "metric"], sort=False)["value"]
    seeds = diff.assign(seed=diff.get("seed", 0))
    seed_gaps = seeds.groupby(["method", "attribute", "metric", "seed"], sort=False)["value"].mean()
    return Means(per_group.mean(), gaps.mean(), overall.mean(), seed_gaps)


def _paired_p(means: Means, baseline: str, method: str, attr: str, metric: str) -> tuple[float, int]:
    """Exact Wilcoxon p of the per-seed gaps of ``method`` vs ``baseline`` (paired by seed) and the
    number of pairs; NaN below two pairs."""
    from fairmed.metrics.stats import paired_test

    try:
        a = means.seed_gaps.xs((baseline, attr, metric), level=["method", "attribute", "metric"])
        b = means.seed_gaps.xs((method, attr, metric), level=["method", "attribute", "metric"])
    except KeyError:
        return NAN, 0
    n = len(a.index.intersection(b.index))
    return (paired_test(a, b)[1] if n >= 2 else NAN), n


def _worst_group(means: Means, method: str, attr: str, metric: str) -> str:
    """``FST 5-6 0.62 [0.50, 0.74]``: the group with the lowest AUC/TPR (highest FPR)."""
    table = means.groups
    key = (method, attr)
    if key not in table.droplevel(["group", "metric"]).index:
        return ""
    rows = table.xs(key, level=["method", "attribute"])
    rows = rows[rows.index.get_level_values("metric") == metric]
    if rows.empty or rows["value"].isna().all():
        return ""
    group, _ = rows["value"].idxmax() if metric == "fpr" else rows["value"].idxmin()
    row = rows.loc[(group, metric)]
    return f"{group} {row['value']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _method_line(means: Means, method: str, attrs: list[str], headline: str | None) -> str:
    parts = [f"AUC {means.total(method, 'auc'):.3f}, acc {means.total(method, 'accuracy'):.3f}"]
    for attr in attrs:
        gaps = "/".join(f"{means.gap(method, attr, m):.3f}" for m in METRICS)
        parts.append(f"{attr} gaps {gaps}")
    if headline and attrs:
        worst = _worst_group(means, method, attrs[0], headline)
        if worst:
            label = "highest" if headline == "fpr" else "lowest"
            parts.append(f"{label} {attrs[0]} {headline.upper()} {worst}")
    return f"{method}: " + "; ".join(parts)


def _reversed(means: Means, baseline: str, method: str, attr: str, metric: str) -> str:
    """The group now worse off when ``method`` makes the baseline's best group worse than its worst
    one on ``metric`` (a reversal, not a narrowing), else ""."""
    table = means.groups["value"]
    sign = -1.0 if metric == "fpr" else 1.0  # FPR: higher is worse
    try:
        before = sign * table.xs((baseline, attr, metric), level=["method", "attribute", "metric"])
        after = sign * table.xs((method, attr, metric), level=["method", "attribute", "metric"])
    except KeyError:
        return ""
    before = before.dropna()
    if len(before) < 2:
        return ""
    worst, best = before.idxmin(), before.idxmax()
    if worst in after.index and best in after.index and after[best] < after[worst]:
        return str(best)
    return ""


def _headline(means: Means, baseline: str, attr: str) -> str | None:
    """The metric with the largest gap on ``attr`` under the baseline (None: no gaps)."""
    gaps = {m: means.gap(baseline, attr, m) for m in METRICS}
    gaps = {m: g for m, g in gaps.items() if g == g}
    return max(gaps, key=gaps.get) if gaps else None


def _verdict(means: Means, methods: list[str], baseline: str, attr: str, metric: str) -> list[str]:
    from fairmed.metrics.multiplicity import holm
    from fairmed.metrics.stats import min_p_wilcoxon

    before = means.gap(baseline, attr, metric)
    lines = [f"summary: under {baseline} the largest {attr} gap is {metric.upper()} {before:.3f}"]
    acc0, auc0 = means.total(baseline, "accuracy"), means.total(baseline, "auc")
    others = [m for m in methods if m != baseline]
    tests = [_paired_p(means, baseline, m, attr, metric) for m in others]
    raw = np.array([p for p, _ in tests], dtype=float)
    adjusted = np.full(len(raw), NAN)
    if (~np.isnan(raw)).any():
        adjusted[~np.isnan(raw)] = holm(raw[~np.isnan(raw)])
    changes, accuracy = {}, {}
    for method, (_, n), p in zip(others, tests, adjusted):
        after = means.gap(method, attr, metric)
        accuracy[method] = means.total(method, "accuracy") - acc0
        flipped = _reversed(means, baseline, method, attr, metric)
        significant = bool(p <= ALPHA)
        if significant and not flipped:  # a reversal is not a narrowing
            changes[method] = after - before
        if n < 2:
            verb, test = f"gap {after:.3f}", "one seed: no test"
        elif significant:
            word = "narrowed" if after < before else "widened" if after > before else "kept"
            verb, test = f"{word} to {after:.3f}", f"paired Wilcoxon over {n} seeds, Holm p {p:.2g}"
        else:
            m = int((~np.isnan(raw)).sum())
            floor = min(1.0, min_p_wilcoxon(n) * m)  # the smallest Holm-adjusted p
            verb = f"gap {after:.3f} vs {before:.3f}, not significant"
            test = f"paired Wilcoxon over {n} seeds, Holm p {p:.2g}" + (
                f"; the smallest it can be with {n} seeds and {m} mitigations is {floor:.2g}"
                if floor > ALPHA
                else ""
            )
        if flipped:
            verb = f"reversed ({flipped} now worse off), gap now {after:.3f}"
        lines.append(
            f"  {method}: {verb} (accuracy {accuracy[method]:+.3f},"
            f" AUC {means.total(method, 'auc') - auc0:+.3f}; {test})"
        )
    narrowed = {m: d for m, d in changes.items() if d < 0}
    if narrowed:
        best = min(narrowed, key=lambda m: (round(narrowed[m], 9), -accuracy[m]))  # ties: better accuracy
        lines[0] += f"; {best} narrows it most ({narrowed[best]:+.3f})"
    elif others:
        lines[0] += "; no mitigation narrows it significantly"
    return lines


def summary_lines(results: pd.DataFrame, split: str = "test", baseline: str | None = None) -> list[str]:
    """Lines for the terminal; empty when the results hold no per-group classification metrics."""
    res = results[results["split"] == split] if "split" in results else results
    res = res[res["metric"].isin([*METRICS, "accuracy"])]
    if res.empty or "method" not in res:
        return []
    methods = list(dict.fromkeys(res["method"]))
    baseline = baseline if baseline in methods else methods[0]
    attrs = [a for a in dict.fromkeys(res["attribute"]) if a != OVERALL]
    seeds = res["seed"].nunique() if "seed" in res else 1
    means = _means(res)
    headline = _headline(means, baseline, attrs[0]) if attrs else None
    lines = [
        f"{split} split, mean over {seeds} seed(s); gaps = largest - smallest group value of AUC/TPR/FPR;"
        " [..] = 95% CI"
    ]
    lines += [_method_line(means, method, attrs, headline) for method in methods]
    if headline is not None:
        lines += _verdict(means, methods, baseline, attrs[0], headline)
    return lines


__all__ = ["summary_lines"]
