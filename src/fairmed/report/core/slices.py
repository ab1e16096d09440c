"""'Where it fails': the slices a search found (``fairmed slices ... --report DIR``), with the
effect of each on held-out rows and where they sit among every slice searched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.metrics.slices import CANDIDATES_TABLE, SLICES_TABLE
from fairmed.report.context import ReportContext
from fairmed.report.sections import Section
from fairmed.report.style import NEUTRAL_COLOR, OKABE_ITO, new_figure, wrap_label

SIGNIFICANT_COLOR = OKABE_ITO[5]  # vermillion
TESTED_COLOR = OKABE_ITO[0]  # blue


def slices_section(ctx: ReportContext) -> Section | None:
    """None unless the folder holds a slice search (tables/slices.parquet)."""
    tested = ctx.tables.get(SLICES_TABLE)
    if tested is None:
        return None
    searched = ctx.tables.get(CANDIDATES_TABLE)
    first = tested.iloc[0] if len(tested) else None
    metric = str(first["metric"]) if first is not None else "the metric"
    intro = _intro(tested, metric)
    if first is None:
        return Section("Where it fails", intro=intro, key="slices")
    fig = _figure(tested, searched, metric)
    caption = (
        f"Left: every slice searched on the discovery half (grey), {metric} in the slice minus the rest "
        "against its size; the slices tested are numbered by rank. Right: the tested slices on the held-out "
        f"half, {metric} in the slice minus the rest with its 95% interval; red: significant after "
        f"{first['adjust']} adjustment over the {len(tested)} tested at alpha {first['alpha']:g}."
    )
    return Section(
        "Where it fails",
        intro=intro,
        figures=[ctx.save(fig, "slices")],
        captions=[caption],
        tables={f"Slices where {metric} is worst (held-out half)": _table(tested)},
        key="slices",
    )


def _intro(tested: pd.DataFrame, metric: str) -> str:
    if tested.empty:
        return f"The slice search found no slice where {metric} is worse than in the rest."
    o = tested.iloc[0]
    n_sig = int(tested["significant"].sum())
    return (
        f"Which combinations of attribute values (slices, up to {o['max_depth']} conditions, at least "
        f"{o['min_support']} rows) have the worst {metric}? {int(o['n_tested'])} slices were searched on "
        f"a random half of the data ({int(o['n_search_rows'])} rows, units: {o['unit']}); the "
        f"{len(tested)} worst, after folding slices whose extra condition changes nothing, were then "
        f"measured on the other half ({int(o['n_test_rows'])} rows), where the search chose nothing: "
        "their effects and p-values there are not inflated by the search.\n\n"
        f"{n_sig} of {len(tested)} are significantly worse than the rest ({o['adjust']}-adjusted "
        f"p <= {o['alpha']:g}). A slice that is not significant may still fail: the held-out half "
        "may be too small to tell."
    )


def _figure(tested: pd.DataFrame, searched: pd.DataFrame | None, metric: str):
    n = len(tested)
    fig = new_figure(12, max(3.5, 0.45 * n + 1.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    if searched is not None and not searched.empty:
        left.scatter(searched["support"], searched["effect"], s=6, color=NEUTRAL_COLOR, alpha=0.35, lw=0)
        found = searched.set_index("slice")
        for row in tested.itertuples(index=False):
            if row.slice in found.index:
                cand = found.loc[row.slice]
                color = SIGNIFICANT_COLOR if row.significant else TESTED_COLOR
                left.scatter([cand["support"]], [cand["effect"]], s=30, color=color, zorder=3)
                left.annotate(
                    str(row.rank),
                    (cand["support"], cand["effect"]),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=9,
                )
        left.set_xscale("log")
    left.axhline(0, color="black", lw=0.8)
    left.set_xlabel("slice size (rows, discovery half)")
    left.set_ylabel(f"{metric}: slice minus rest")
    left.set_title("All slices searched")
    y = np.arange(n)
    colors = [SIGNIFICANT_COLOR if s else TESTED_COLOR for s in tested["significant"]]
    err = np.vstack([tested["effect"] - tested["ci_low"], tested["ci_high"] - tested["effect"]])
    for yi, x, e0, e1, c in zip(y, tested["effect"], err[0], err[1], colors):
        right.errorbar([x], [yi], xerr=[[e0], [e1]], fmt="o", color=c, capsize=3)
    right.axvline(0, color="black", lw=0.8)
    right.set_yticks(y, [wrap_label(f"{r}. {s}", 40) for r, s in zip(tested["rank"], tested["slice"])])
    right.set_ylim(n - 0.5, -0.5)
    right.set_xlabel(f"{metric}: slice minus rest (held-out half, 95% CI)")
    right.set_title("Top slices, tested")
    right.grid(axis="y", visible=False)
    return fig


def _table(tested: pd.DataFrame) -> pd.DataFrame:
    def fmt(x: float) -> str:
        return "NaN" if x != x else f"{x:.3g}"

    return pd.DataFrame(
        {
            "rank": tested["rank"],
            "slice": tested["slice"],
            "rows": tested["support"],
            "n (held out)": tested["n"],
            "slice value": tested["value"].map(fmt),
            "rest": tested["rest_value"].map(fmt),
            "effect [95% CI]": [
                f"{fmt(e)} [{fmt(lo)}, {fmt(hi)}]"
                for e, lo, hi in zip(tested["effect"], tested["ci_low"], tested["ci_high"])
            ],
            "p": tested["p_value"].map(lambda p: f"{p:.2g}"),
            "p adjusted": [
                f"{p:.2g}" + (" *" if s else "") for p, s in zip(tested["p_adjusted"], tested["significant"])
            ],
        }
    )
