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
    criterion_rows,
    expand_metrics,
    gap_label,
    gap_rows,
    in_unit_interval,
    metric_short,
    primary_metric,
    run_label,
)

# (criterion, what must be equal across groups, Results row: the audit's criterion or a difference gap)
BINARY_CRITERIA: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("demographic parity", "selection rate", ("criterion", "demographic_parity")),
    ("equal opportunity", "TPR", ("criterion", "equal_opportunity")),
    ("equalized odds", "TPR and FPR (larger difference)", ("criterion", "equalized_odds")),
    ("accuracy parity", "accuracy", ("criterion", "accuracy_parity")),
    ("predictive parity", "PPV", ("difference", "ppv")),
)
MULTICLASS_CRITERIA: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("demographic parity (multi-class)", "predicted-class rates", ("criterion", "dp_multiclass")),
    ("accuracy parity", "accuracy", ("difference", "accuracy")),
    ("Eopp0", "TNR per class (worst pair)", ("criterion", "eopp0")),
    ("Eopp1", "TPR per class (worst pair)", ("criterion", "eopp1")),
    ("Eodd", "TPR + FPR per class (worst pair)", ("criterion", "eodd")),
)
GAP_PLOT_METRICS = (
    "auc",
    "auc_ovr",
    "accuracy",
    "tpr",
    "fpr",
    "selection_rate",
    "f1_macro",
    "recon_mse",
    "latent_std",
    "elbo",
)


# criteria on decisions alone: a model that gives every image the same decision meets them trivially
VACUOUS_WHEN_DEGENERATE = frozenset(
    {"demographic_parity", "equal_opportunity", "equalized_odds", "dp_multiclass", "eopp0", "eopp1", "eodd"}
)


def degenerate_runs(split: SplitResults, keys: list[str]) -> dict[str, str]:
    """Run label -> "no positive" / "every image positive", for runs whose decisions are constant.

    Read from the whole-population selection rate: 0 (or 1) overall means 0 (or 1) in every group,
    so every group's TPR and FPR are equal too and the decision criteria hold whatever the model."""
    rows = split.overall[split.overall["metric"] == "selection_rate"]
    if rows.empty:
        return {}
    rate = rows.assign(_run=run_label(rows, keys)).groupby("_run", sort=False)["value"]
    low, high = rate.max(), rate.min()  # every seed of a configuration degenerate
    out = {run: "no positive" for run, v in low.items() if v == 0}
    out.update({run: "every image positive" for run, v in high.items() if v == 1})
    return out


def verdict(value: float, ci_low: float, ci_high: float, tolerance: float) -> str:
    """``holds`` / ``fails`` by the gap estimate; ``uncertain`` when its CI straddles the tolerance."""
    if np.isnan(value):
        return "–"
    if not np.isnan(ci_low) and not np.isnan(ci_high) and ci_low <= tolerance < ci_high:
        return "uncertain"
    return "holds" if value <= tolerance else "fails"


def criteria_table(split: SplitResults, tolerance: float) -> pd.DataFrame:
    """Rows: attribute x criterion; columns: configurations; cells: verdict, gap [CI]."""
    keys = comparison_keys(split.varying)
    criteria = criterion_rows(split)
    gaps = gap_rows(split, "difference")
    sources = {"criterion": criteria, "difference": gaps}
    multiclass = (criteria["metric"] == "dp_multiclass").any()
    degenerate = degenerate_runs(split, keys)
    records = []
    for name, what, (source, metric) in MULTICLASS_CRITERIA if multiclass else BINARY_CRITERIA:
        rows = sources[source]
        rows = rows[rows["metric"] == metric]
        if rows.empty:
            continue
        rows = rows.assign(_run=run_label(rows, keys))
        # over seeds: the mean gap and the median seed's interval bounds
        agg = rows.groupby(["attribute", "_run"], sort=False).agg(
            value=("value", "mean"), ci_low=("ci_low", "median"), ci_high=("ci_high", "median")
        )
        for (attribute, run), r in agg.iterrows():
            ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if pd.notna(r.ci_low) else ""
            vacuous = run in degenerate and metric in VACUOUS_WHEN_DEGENERATE
            said = "vacuous" if vacuous else verdict(r.value, r.ci_low, r.ci_high, tolerance)
            records.append(
                {
                    "attribute": attribute,
                    "criterion": name,
                    "equal across groups": what,
                    "_run": run,
                    "cell": f"{said}\n{r.value:.3f}{ci}",
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


def degenerate_note(degenerate: dict[str, str]) -> str:
    """One sentence naming the degenerate runs (see :func:`degenerate_runs`); "" when there are none."""
    if not degenerate:
        return ""
    runs = "; ".join(f"{run}: {what}" for run, what in degenerate.items())
    return (
        f"Degenerate model ({runs}): it gives every image the same decision, so selection rate, TPR "
        "and FPR are equal in every group and demographic parity, equal opportunity and equalized "
        "odds are vacuous (marked 'vacuous', not 'holds'). Check the threshold or the training."
    )


def underpowered_note(gaps: pd.DataFrame, tolerance: float) -> str:
    """The gaps this audit could not tell from chance at the tolerance: their minimum detectable gap
    (the audit's ``mdg``, mean over runs) exceeds it. "" when none does or Results carry no ``mdg``."""
    if "mdg" not in gaps.columns:
        return ""
    rows = gaps[gaps["mdg"].notna()]
    mdg = rows.groupby(["attribute", "metric"], sort=False)["mdg"].mean()
    over = mdg[mdg > tolerance]
    if over.empty:
        return ""
    named = ", ".join(f"{a} {metric_short(m)} ({v:.3f})" for (a, m), v in over.items())
    return (
        f"Too few images to see a gap of {tolerance:g}: the minimum detectable gap (80% power, alpha 0.05) "
        f"exceeds it for {named}. There, a gap within the tolerance or a criterion that holds may hide a "
        "real gap up to that size; `fairmed power` gives the images per group needed."
    )


def fairness_section(ctx: ReportContext, split: SplitResults) -> Section | None:
    gaps = gap_rows(split, "difference")
    if gaps.empty:
        return None
    keys = comparison_keys(split.varying)
    present = list(dict.fromkeys(gaps["metric"].astype(str)))
    lead = primary_metric(split.groups) if not split.groups.empty else None
    rows = gaps[["attribute", *keys]].drop_duplicates() if keys else gaps[["attribute"]].drop_duplicates()
    limit = 6 if len(rows) <= 8 else 3  # many rows make tall panels: then three metrics in one row
    wanted = dict.fromkeys([lead, *expand_metrics(GAP_PLOT_METRICS, set(present), stats=1)])
    metrics = [m for m in wanted if m in present][:limit] or present[:3]
    fig = gap_plot(
        gaps[gaps["metric"].isin(metrics)],
        metrics,
        keys,
        ctx.tolerance,
        gap_label,
        in_unit_interval,
    )
    figures = [ctx.save(fig, "gaps")]
    table = criteria_table(split, ctx.tolerance)
    degenerate = degenerate_runs(split, keys)
    seeds = (
        " Over seeds, a cell shows the mean gap and the median of the seeds' interval bounds."
        if "seed" in split.varying
        else ""
    )
    return Section(
        "Gaps and fairness criteria" if not table.empty else "Gaps between groups",
        intro=(
            "The gap is the largest minus the smallest group value of a metric (0 = every group the "
            "same). A fairness criterion holds when its gap is within your tolerance of "
            f"{ctx.tolerance:g}; it is uncertain when the 95% confidence interval of the gap reaches "
            "across the tolerance, i.e. the data cannot tell." + seeds
        ),
        figures=figures,
        captions=[
            f"Gap (difference) per metric with its bootstrap 95% CI; dashed line: tolerance {ctx.tolerance:g} "
            "(drawn for metrics on a 0-1 scale only)."
        ],
        tables={f"Fairness criteria at tolerance {ctx.tolerance:g}": table} if not table.empty else {},
        notes=[
            note
            for note in (
                degenerate_note(degenerate),
                underpowered_note(gaps, ctx.tolerance),
                "Demographic parity: equal rate of positive predictions; equal opportunity: equal TPR "
                "(sensitivity); equalized odds: equal TPR and FPR; accuracy parity: equal accuracy; "
                "predictive parity: equal PPV; Eopp0/Eopp1/Eodd: the one-vs-rest TNR/TPR/TPR+FPR "
                "differences averaged over classes (FairPrune). They cannot all hold at once when "
                "prevalence differs between groups, so read them together with the clinical context."
                if not table.empty
                else "",
            )
            if note
        ],
        key="fairness",
    )
