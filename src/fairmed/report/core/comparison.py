"""Comparisons across strategies or compositions: box plots over seeds with stars at the sex-ratio
paper's thresholds, from the Wilcoxon signed-rank test over seeds paired by seed (runs of one seed
share data and initialisation), computed by ``fairmed.metrics.stats``."""

from __future__ import annotations

import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.plots import BoxPanel, box_panels
from fairmed.report.sections import Section
from fairmed.report.style import figure_name, ordered_groups
from fairmed.report.tidy import (
    SplitResults,
    comparison_keys,
    gap_label,
    gap_rows,
    metric_label,
    metric_short,
    primary_metric,
    run_label,
)
from fairmed.schema import OVERALL

# the sex-ratio paper's convention (note * at p <= 0.1, not the usual 0.05), as fairmed.metrics.stats.stars
STAR_KEY = (
    "the sex-ratio paper's convention: **** p<=1e-4, *** p<=1e-3, ** p<=1e-2, * p<=0.1, ns: not significant"
)


def seed_stars(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """Two sets of runs (``value``, ``seed``) as stars: Wilcoxon signed-rank paired by seed, two-sided
    (``ns`` when not significant; "" with fewer than two common seeds)."""
    from fairmed.metrics.stats import paired_test, stars

    x, y = a.groupby("seed")["value"].mean(), b.groupby("seed")["value"].mean()
    if len(x.index.intersection(y.index)) < 2:
        return ""
    return stars(paired_test(x, y)[1])


def floor_note(n_seeds: int) -> str:
    """The sentence next to the star legend when ``n_seeds`` make some stars impossible."""
    from fairmed.metrics.stats import min_p_wilcoxon, star_floor_note

    return star_floor_note(min_p_wilcoxon(n_seeds), "Wilcoxon signed-rank test", f"{n_seeds} seeds")


def _values(rows: pd.DataFrame, keys: list[str], by_group: bool) -> pd.DataFrame:
    group = rows["group"].astype(str) if by_group else None
    frame = pd.DataFrame(
        {
            "x": run_label(rows, keys),
            "group": group,
            "seed": rows["seed"].to_numpy() if "seed" in rows.columns else 0,
            "value": rows["value"].to_numpy(dtype=float),
        }
    )
    return frame[frame["value"].notna()]  # undefined values (e.g. AUC of a one-class group) are not drawn


def _between_groups(values: pd.DataFrame, first: str, last: str) -> dict[str, str]:
    marks = {}
    for x, sub in values.groupby("x", sort=False):
        marks[x] = seed_stars(sub[sub["group"] == first], sub[sub["group"] == last])
    return marks


def _versus_baseline(values: pd.DataFrame) -> dict[str, str]:
    xs = list(dict.fromkeys(values["x"]))
    base = values[values["x"] == xs[0]]
    return {x: seed_stars(base, values[values["x"] == x]) for x in xs[1:]}


def _facets(keys: list[str]) -> tuple[str | None, list[str]]:
    """With two varying keys (config x method) draw one row of panels per method, x = config."""
    if len(keys) >= 2 and "method" in keys:
        return "method", [k for k in keys if k != "method"]
    return None, keys


def _split_facets(rows: pd.DataFrame, facet: str | None) -> list[tuple[str, pd.DataFrame]]:
    if facet is None:
        return [("", rows)]
    return [(str(v), rows[rows[facet].astype(str) == str(v)]) for v in dict.fromkeys(rows[facet].astype(str))]


def _group_boxes(
    ctx: ReportContext,
    split: SplitResults,
    metric: str,
    facet: str | None,
    x_keys: list[str],
    baseline: str,
    per: str,
):
    """Per attribute: (figure name, figure, caption) of ``metric`` per group and its gap over seeds."""
    name = metric_short(metric)
    gaps = gap_rows(split, "difference")
    for attribute in dict.fromkeys(split.groups["attribute"].astype(str)):
        rows = split.groups[(split.groups["attribute"] == attribute) & (split.groups["metric"] == metric)]
        attr_gaps = gaps[(gaps["attribute"] == attribute) & (gaps["metric"] == metric)]
        panels, groups = [], []
        for label, sub in _split_facets(rows, facet):
            values = _values(sub, x_keys, by_group=True)
            if values.empty:
                continue
            groups = ordered_groups(values["group"])
            marks = _between_groups(values, groups[0], groups[-1]) if len(groups) > 1 else {}
            prefix = f"{label}: " if label else ""
            panels.append(
                BoxPanel(values, metric_label(metric), f"{prefix}{name} per {attribute} group", marks)
            )
            gsub = attr_gaps if facet is None else attr_gaps[attr_gaps[facet].astype(str) == label]
            gvalues = _values(gsub, x_keys, by_group=False)
            if not gvalues.empty:
                title = f"{prefix}{name} gap by {attribute}"
                panels.append(
                    BoxPanel(gvalues, gap_label(metric), title, _versus_baseline(gvalues), zero_based=True)
                )
        if not panels:
            continue
        with_gaps = any(p.zero_based for p in panels)
        fig = box_panels(
            panels, ctx.colors, f"{name} by {attribute} over seeds", ncols=2 if with_gaps else None
        )
        caption = (
            f"{name} per {attribute} group, one dot per seed; stars: Wilcoxon signed-rank test {groups[0]} vs "
            f"{groups[-1]} within each configuration, paired by seed."
            + (f" Gap panels: stars compare each configuration with {baseline}{per}." if with_gaps else "")
            + f" ({STAR_KEY}.)"
        )
        yield figure_name("box", attribute, metric), fig, caption


def comparison_section(
    ctx: ReportContext, split: SplitResults, lead_gap: str | None = None
) -> Section | None:
    """Box plots over seeds of the primary metric and, when it differs, of ``lead_gap`` (the metric
    whose gap the summary names as the largest), so the figure behind every summary claim is here."""
    keys = comparison_keys(split.varying)
    if not keys or "seed" not in split.varying or split.groups.empty:
        return None
    metric = primary_metric(split.groups)
    facet, x_keys = _facets(keys)
    baseline = run_label(split.groups, x_keys).iloc[0]
    per = f" within each {facet}" if facet else ""
    figures, captions = [], []
    for boxed in dict.fromkeys(m for m in (metric, lead_gap) if m is not None):
        for fig_name, fig, caption in _group_boxes(ctx, split, boxed, facet, x_keys, baseline, per):
            figures.append(ctx.save(fig, fig_name))
            captions.append(caption)

    costs = [m for m in dict.fromkeys((metric, "accuracy")) if (split.overall["metric"] == m).any()]
    panels = []
    for cost in costs:
        for label, sub in _split_facets(split.overall[split.overall["metric"] == cost], facet):
            ovalues = _values(sub, x_keys, by_group=False)
            if not ovalues.empty:
                title = f"{label + ': ' if label else ''}{OVERALL} {metric_short(cost)}"
                panels.append(
                    BoxPanel(ovalues, f"{OVERALL} {metric_label(cost)}", title, _versus_baseline(ovalues))
                )
    if panels:
        what = " and ".join(metric_short(m) for m in costs)
        fig = box_panels(
            panels, ctx.colors, f"{OVERALL.capitalize()} {what}: the cost of mitigation", ncols=3
        )
        figures.append(ctx.save(fig, figure_name("box", OVERALL, metric)))
        captions.append(
            f"Whole-population {what} per configuration; stars: each configuration vs {baseline}{per}"
            f" ({STAR_KEY})."
        )
    n_seeds = split.groups["seed"].nunique()
    floor = floor_note(n_seeds)
    return Section(
        "Comparison of strategies",
        intro=(
            f"Each configuration was run with {n_seeds} seeds; a box summarises them. Stars come from "
            f"the two-sided Wilcoxon signed-rank test over seeds paired by seed, exact ({STAR_KEY}), "
            "not adjusted for the number of comparisons (the summary's changes are). "
            + (f"{floor} 'ns' then often means 'not enough seeds to tell'. " if floor else "")
            + f"Baseline: {baseline}{per}."
        ),
        figures=figures,
        captions=captions,
        key="comparison",
    )
