"""Gaps between groups with confidence intervals, and the named fairness criteria: which hold
within the user's tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.plots import gap_plot
from fairmed.report.sections import Section
from fairmed.report.tidy import (
    SplitResults,
    comparison_keys,
    gap_rows,
    metric_label,
    metric_short,
    primary_metric,
    run_label,
)

# (criterion, what must be equal across groups, metrics whose largest gap measures it)
CRITERIA: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("demographic parity", "selection rate", ("selection_rate",)),
    ("equal opportunity", "TPR", ("tpr",)),
    ("equalized odds", "TPR and FPR (larger gap)", ("tpr", "fpr")),
    ("accuracy parity", "accuracy", ("accuracy",)),
    ("predictive parity", "PPV", ("ppv",)),
    ("Eopp0 (multi-class)", "TNR per class", ("eopp0",)),
    ("Eopp1 (multi-class)", "TPR per class", ("eopp1",)),
    ("Eodd (multi-class)", "TPR and FPR per class", ("eodd",)),
)
GAP_PLOT_METRICS = ("auc", "accuracy", "tpr", "fpr", "selection_rate", "eopp1", "eodd")


def _criterion_rows(gaps: pd.DataFrame, keys: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    """Per run and attribute: the largest of the named metrics' gaps (bounds likewise)."""
    sub = gaps[gaps["metric"].isin(metrics)]
    if sub["metric"].nunique() < len(metrics):
        return sub.iloc[0:0]
    return (
        sub.groupby(keys + ["attribute"], sort=False, dropna=False)[["value", "ci_low", "ci_high"]]
        .max()
        .reset_index()
    )


def verdict(value: float, ci_low: float, ci_high: float, tolerance: float) -> str:
    """``holds`` / ``fails`` by the gap estimate; ``uncertain`` when its CI straddles the tolerance."""
    if np.isnan(value):
        return "–"
    if not np.isnan(ci_low) and not np.isnan(ci_high) and ci_low <= tolerance < ci_high:
        return "uncertain"
    return "holds" if value <= tolerance else "fails"


def criteria_table(gaps: pd.DataFrame, split: SplitResults, tolerance: float) -> pd.DataFrame:
    """Rows: attribute x criterion; columns: configurations; cells: verdict and gap [CI]."""
    keys = comparison_keys(split.varying)
    run_keys = [k for k in split.keys]
    records = []
    for name, what, metrics in CRITERIA:
        rows = _criterion_rows(gaps, run_keys, metrics)
        if rows.empty:
            continue
        rows = rows.assign(_run=run_label(rows, keys))
        # over seeds: the mean gap and the median seed's interval bounds
        agg = rows.groupby(["attribute", "_run"], sort=False).agg(
            value=("value", "mean"), ci_low=("ci_low", "median"), ci_high=("ci_high", "median")
        )
        for (attribute, run), r in agg.iterrows():
            ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if pd.notna(r.ci_low) else ""
            records.append(
                {
                    "attribute": attribute,
                    "criterion": name,
                    "equal across groups": what,
                    "_run": run,
                    "cell": f"{verdict(r.value, r.ci_low, r.ci_high, tolerance)} {r.value:.3f}{ci}",
                }
            )
    if not records:
        return pd.DataFrame()
    long = pd.DataFrame(records)
    runs = list(dict.fromkeys(long["_run"]))
    wide = long.pivot_table(
        index=["attribute", "criterion", "equal across groups"],
        columns="_run",
        values="cell",
        aggfunc="first",
        sort=False,
    )
    wide = wide[runs].reset_index()
    wide.columns.name = None
    if runs == ["model"]:
        wide = wide.rename(columns={"model": "verdict: gap [95% CI]"})
    return wide


def fairness_section(ctx: ReportContext, split: SplitResults) -> Section | None:
    gaps = gap_rows(split, "difference")
    if gaps.empty:
        return None
    keys = comparison_keys(split.varying)
    present = list(dict.fromkeys(gaps["metric"].astype(str)))
    lead = primary_metric(split.groups) if not split.groups.empty else None
    metrics = [m for m in dict.fromkeys([lead, *GAP_PLOT_METRICS]) if m in present][:6] or present[:3]
    fig = gap_plot(
        gaps[gaps["metric"].isin(metrics)],
        metrics,
        keys,
        ctx.tolerance,
        lambda m: f"{metric_short(m)} gap (max - min; {metric_label(m).split('(')[-1].rstrip(')')})",
    )
    figures = [ctx.save(fig, "gaps")]
    table = criteria_table(gaps, split, ctx.tolerance)
    seeds = (
        " Over seeds, a cell shows the mean gap and the median of the seeds' interval bounds."
        if "seed" in split.varying
        else ""
    )
    return Section(
        "Gaps and fairness criteria",
        intro=(
            "The gap is the largest minus the smallest group value of a metric (0 = every group the "
            "same). A fairness criterion holds when its gap is within your tolerance of "
            f"{ctx.tolerance:g}; it is uncertain when the 95% confidence interval of the gap reaches "
            "across the tolerance, i.e. the data cannot tell." + seeds
        ),
        figures=figures,
        captions=[
            f"Gap (difference) per metric with its bootstrap 95% CI; dashed line: tolerance {ctx.tolerance:g}."
        ],
        tables={f"Fairness criteria at tolerance {ctx.tolerance:g}": table} if not table.empty else {},
        notes=[
            "Demographic parity: equal rate of positive predictions; equal opportunity: equal TPR "
            "(sensitivity); equalized odds: equal TPR and FPR; accuracy parity: equal accuracy; "
            "predictive parity: equal PPV. They cannot all hold at once when prevalence differs "
            "between groups, so read them together with the clinical context."
        ],
        key="fairness",
    )
