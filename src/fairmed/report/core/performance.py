"""Per-group performance with confidence intervals: one forest plot per attribute."""

from __future__ import annotations

import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.plots import forest_plot
from fairmed.report.sections import Section
from fairmed.report.style import figure_name
from fairmed.report.tidy import SplitResults, comparison_keys, performance_metrics, run_label
from fairmed.schema import OVERALL


def performance_section(ctx: ReportContext, split: SplitResults) -> Section | None:
    if split.groups.empty:
        return None
    keys = comparison_keys(split.varying)
    n_runs = run_label(split.groups, keys).nunique()
    # many configurations make tall panels: then show three metrics in one row
    n_groups = split.groups.groupby("attribute")["group"].nunique().max()
    metrics = performance_metrics(split.groups, limit=6 if n_runs <= 4 and n_groups <= 12 else 3)
    figures, captions = [], []
    for attribute in dict.fromkeys(split.groups["attribute"].astype(str)):
        rows = split.groups[(split.groups["attribute"] == attribute) & split.groups["metric"].isin(metrics)]
        overall = split.overall[split.overall["metric"].isin(metrics)].assign(
            attribute=attribute, group=OVERALL
        )
        fig = forest_plot(pd.concat([rows, overall]), metrics, keys, ctx.colors, attribute)
        figures.append(ctx.save(fig, figure_name("forest", attribute)))
        captions.append(
            f"Each metric per {attribute} group ({OVERALL}: black diamond) with its bootstrap 95% confidence "
            "interval"
            + (
                "; one row per configuration, thin lines are single seeds, the large marker their mean."
                if keys or "seed" in split.varying
                else "."
            )
        )
    return Section(
        "Performance per group",
        intro=(
            "How well the model does for each group, metric by metric. Horizontal lines are 95% "
            "confidence intervals from the bootstrap. Whether two groups differ beyond chance is the "
            "gap's own test (the summary), not whether their intervals overlap. Rates are fractions (0-1)."
        ),
        figures=figures,
        captions=captions,
        key="performance",
    )
