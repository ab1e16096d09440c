"""Comparisons across strategies or compositions: box plots over seeds with Mann-Whitney stars
(the sex-ratio paper's convention), computed by ``fairmed.metrics.stats``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.plots import box_plot
from fairmed.report.sections import Section
from fairmed.report.style import figure_name, ordered_groups
from fairmed.report.tidy import (
    SplitResults,
    comparison_keys,
    gap_rows,
    metric_label,
    primary_metric,
    run_label,
)
from fairmed.schema import OVERALL

X = "configuration"


def mw_stars(a: np.ndarray, b: np.ndarray) -> str:
    """Mann-Whitney U two-sided test between two sets of runs, as stars (``ns`` when not significant)."""
    from fairmed.metrics.stats import mann_whitney, stars

    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return ""
    _, p = mann_whitney(a, b)
    return stars(p)


def _versus_baseline(values: pd.DataFrame) -> dict[str, str]:
    xs = list(dict.fromkeys(values[X]))
    base = values.loc[values[X] == xs[0], "value"].to_numpy(dtype=float)
    marks = {}
    for x in xs[1:]:
        marks[x] = mw_stars(base, values.loc[values[X] == x, "value"].to_numpy(dtype=float))
    return marks


def comparison_section(ctx: ReportContext, split: SplitResults) -> Section | None:
    keys = comparison_keys(split.varying)
    if not keys or "seed" not in split.varying or split.groups.empty:
        return None
    metric = primary_metric(split.groups)
    label = metric_label(metric)
    figures, captions = [], []
    baseline = None
    for attribute in dict.fromkeys(split.groups["attribute"].astype(str)):
        rows = split.groups[(split.groups["attribute"] == attribute) & (split.groups["metric"] == metric)]
        values = rows.assign(**{X: run_label(rows, keys)})[[X, "group", "value"]]
        baseline = values[X].iloc[0]
        groups = ordered_groups(values["group"])
        fig = box_plot(
            values, X, ctx.colors, label, f"{metric.upper()} per {attribute} group over seeds", mw_stars
        )
        figures.append(ctx.save(fig, figure_name("box", attribute, metric)))
        captions.append(
            f"{metric.upper()} per {attribute} group for each configuration, one dot per seed. Stars: "
            f"Mann-Whitney U test {groups[0]} vs {groups[-1]} over seeds "
            "(**** p<=1e-4, *** p<=1e-3, ** p<=1e-2, * p<=0.1, ns: not significant)."
        )
        gaps = gap_rows(split, "difference")
        gaps = gaps[(gaps["attribute"] == attribute) & (gaps["metric"] == metric)]
        if not gaps.empty:
            gvalues = gaps.assign(**{X: run_label(gaps, keys)}, group=None)[[X, "group", "value"]]
            fig = box_plot(
                gvalues,
                X,
                ctx.colors,
                f"gap in {metric.upper()} (max - min across {attribute} groups)",
                f"{metric.upper()} gap by {attribute} over seeds",
                mw_stars,
                baseline_stars=_versus_baseline(gvalues),
            )
            figures.append(ctx.save(fig, figure_name("box", attribute, metric, "gap")))
            captions.append(
                f"The {attribute} gap in {metric.upper()} per configuration; stars compare each "
                f"configuration with {gvalues[X].iloc[0]} (Mann-Whitney U over seeds)."
            )
    overall = split.overall[split.overall["metric"] == metric]
    if not overall.empty:
        ovalues = overall.assign(**{X: run_label(overall, keys)}, group=None)[[X, "group", "value"]]
        fig = box_plot(
            ovalues,
            X,
            ctx.colors,
            f"{OVERALL} {label}",
            f"{OVERALL.capitalize()} {metric.upper()} over seeds (the cost of mitigation)",
            mw_stars,
            baseline_stars=_versus_baseline(ovalues),
        )
        figures.append(ctx.save(fig, figure_name("box", OVERALL, metric)))
        captions.append(
            f"Whole-population {metric.upper()} per configuration; stars compare each with {ovalues[X].iloc[0]}."
        )
    n_seeds = split.groups["seed"].nunique()
    return Section(
        "Comparison of strategies",
        intro=(
            f"Each configuration was run with {n_seeds} seeds; a box summarises them. Stars come from "
            "the Mann-Whitney U test over seeds. With few seeds the smallest possible p-value is large "
            f"(for 3 vs 3 seeds it is 0.1), so 'ns' often means 'not enough seeds to tell'. Baseline: {baseline}."
        ),
        figures=figures,
        captions=captions,
        key="comparison",
    )
