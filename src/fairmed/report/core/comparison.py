"""Comparisons across strategies or compositions: box plots over seeds with Mann-Whitney stars
(the sex-ratio paper's convention), computed by ``fairmed.metrics.stats``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.plots import BoxPanel, box_panels
from fairmed.report.sections import Section
from fairmed.report.style import figure_name, ordered_groups
from fairmed.report.tidy import (
    SplitResults,
    comparison_keys,
    gap_rows,
    metric_label,
    metric_short,
    primary_metric,
    run_label,
)
from fairmed.schema import OVERALL

STAR_KEY = "**** p<=1e-4, *** p<=1e-3, ** p<=1e-2, * p<=0.1, ns: not significant"


def mw_stars(a: np.ndarray, b: np.ndarray) -> str:
    """Mann-Whitney U two-sided test between two sets of runs, as stars (``ns`` when not significant)."""
    from fairmed.metrics.stats import mann_whitney, stars

    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) < 2 or len(b) < 2:
        return ""
    _, p = mann_whitney(a, b)
    return stars(p)


def _values(rows: pd.DataFrame, keys: list[str], by_group: bool) -> pd.DataFrame:
    group = rows["group"].astype(str) if by_group else None
    frame = pd.DataFrame(
        {"x": run_label(rows, keys), "group": group, "value": rows["value"].to_numpy(dtype=float)}
    )
    return frame[frame["value"].notna()]  # undefined values (e.g. AUC of a one-class group) are not drawn


def _between_groups(values: pd.DataFrame, first: str, last: str) -> dict[str, str]:
    marks = {}
    for x, sub in values.groupby("x", sort=False):
        a = sub.loc[sub["group"] == first, "value"].to_numpy(dtype=float)
        b = sub.loc[sub["group"] == last, "value"].to_numpy(dtype=float)
        marks[x] = mw_stars(a, b)
    return marks


def _versus_baseline(values: pd.DataFrame) -> dict[str, str]:
    xs = list(dict.fromkeys(values["x"]))
    base = values.loc[values["x"] == xs[0], "value"].to_numpy(dtype=float)
    return {x: mw_stars(base, values.loc[values["x"] == x, "value"].to_numpy(dtype=float)) for x in xs[1:]}


def comparison_section(ctx: ReportContext, split: SplitResults) -> Section | None:
    keys = comparison_keys(split.varying)
    if not keys or "seed" not in split.varying or split.groups.empty:
        return None
    metric = primary_metric(split.groups)
    name = metric_short(metric)
    gaps = gap_rows(split, "difference")
    figures, captions = [], []
    baseline = run_label(split.groups, keys).iloc[0]
    for attribute in dict.fromkeys(split.groups["attribute"].astype(str)):
        rows = split.groups[(split.groups["attribute"] == attribute) & (split.groups["metric"] == metric)]
        values = _values(rows, keys, by_group=True)
        if values.empty:
            continue
        groups = ordered_groups(values["group"])
        marks = _between_groups(values, groups[0], groups[-1]) if len(groups) > 1 else {}
        panels = [BoxPanel(values, metric_label(metric), f"{name} per {attribute} group", marks)]
        gvalues = _values(
            gaps[(gaps["attribute"] == attribute) & (gaps["metric"] == metric)], keys, by_group=False
        )
        if not gvalues.empty:
            panels.append(
                BoxPanel(
                    gvalues,
                    f"{name} gap (max - min across groups)",
                    f"{name} gap by {attribute}",
                    _versus_baseline(gvalues),
                    zero_based=True,
                )
            )
        fig = box_panels(panels, ctx.colors, f"{name} by {attribute} over seeds")
        figures.append(ctx.save(fig, figure_name("box", attribute, metric)))
        captions.append(
            f"Left: {name} per {attribute} group, one dot per seed; stars: Mann-Whitney U test {groups[0]} vs "
            f"{groups[-1]} within each configuration."
            + (
                f" Right: the {attribute} gap; stars: each configuration vs {baseline}."
                if len(panels) > 1
                else ""
            )
            + f" ({STAR_KEY}.)"
        )
    ovalues = _values(split.overall[split.overall["metric"] == metric], keys, by_group=False)
    if not ovalues.empty:
        panel = BoxPanel(
            ovalues, f"{OVERALL} {metric_label(metric)}", f"{OVERALL} {name}", _versus_baseline(ovalues)
        )
        fig = box_panels([panel], ctx.colors, f"{OVERALL.capitalize()} {name}: the cost of mitigation")
        figures.append(ctx.save(fig, figure_name("box", OVERALL, metric)))
        captions.append(
            f"Whole-population {name} per configuration; stars: each configuration vs {baseline}."
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
