"""Report section of the ``gce_resampling`` study: the paper's Tables 1-4, the decisions, one figure.

Reads the tables the kind's ``analyse`` writes (:mod:`fairmed.studies.gce`): ``gce_summary``
(tidy means over seeds), ``gce_table_<loss>`` / ``gce_per_attribute_<loss>`` (display tables),
``gce_decision_summary`` and ``gce_sizes`` (what the resampling did).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.report.sections import Section, register_section
from fairmed.report.style import NEUTRAL_COLOR, PALETTE, new_figure
from fairmed.studies.gce import BEFORE, KIND, TABLE_NUMBERS, config_title, growth_text

SMALL_GROUP = 100  # subgroups with fewer training rows than this show their n in the decision tables
FAMILY_COLORS = {
    "DS": ["#D55E00"],
    "US": ["#56B4E9", "#0072B2", "#332288"],
    "D&U": ["#44AA99", "#009E73", "#117733"],
}
FPR_GAP_NOTE = (
    "FPR gap = max − min false-positive rate (No Finding predicted for a patient with a finding) "
    "across the attribute's subgroups, on the test split at the audit threshold."
)


def method_colors(methods: list[str]) -> dict[str, str]:
    """Before grey; DS, US<K>, D&U<K> by family (darker = larger K); one-attribute variants from the palette."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    extra = iter(PALETTE)
    for m in methods:
        if m == BEFORE:
            out[m] = NEUTRAL_COLOR
            continue
        family = "D&U" if m.startswith("D&U") else "US" if m.startswith("US") and "@" not in m else m
        shades = FAMILY_COLORS.get(family)
        if shades is None:
            out[m] = next(extra)
            continue
        k = seen.get(family, 0)
        seen[family] = k + 1
        out[m] = shades[min(k, len(shades) - 1)]
    return out


def bars_figure(summary: pd.DataFrame, losses: list[str], methods: list[str]):
    """Rows = detector loss, panels = AUC and each attribute's FPR gap (y shared down a column); one
    dot per method (mean over seeds) with its interval, Before grey with a dashed reference line.
    Dots rather than bars: the AUC axis does not start at 0."""
    rows = list(dict.fromkeys(summary["row"]))
    colors = method_colors(methods)
    fig = new_figure(1.2 + max(0.3 * len(methods), 2.8) * len(rows), 1.0 + 2.5 * len(losses))
    axes = fig.subplots(len(losses), len(rows), squeeze=False, sharey="col")
    x = np.arange(len(methods))
    for i, loss in enumerate(losses):
        sub = summary[summary["config"] == loss].set_index(["row", "method"])
        for j, row in enumerate(rows):
            ax = axes[i, j]
            mean = np.array([sub["mean"].get((row, m), np.nan) for m in methods], dtype=float)
            lo = np.array([sub["ci_low"].get((row, m), np.nan) for m in methods], dtype=float)
            hi = np.array([sub["ci_high"].get((row, m), np.nan) for m in methods], dtype=float)
            if BEFORE in methods and np.isfinite(mean[methods.index(BEFORE)]):
                ax.axhline(mean[methods.index(BEFORE)], color=NEUTRAL_COLOR, ls="--", lw=0.8, zorder=1)
            for k, m in enumerate(methods):
                if not np.isfinite(mean[k]):
                    continue
                if np.isfinite(lo[k]) and np.isfinite(hi[k]):
                    ax.vlines(x[k], lo[k], hi[k], color=colors[m], lw=1.6, zorder=2)
                ax.plot(x[k], mean[k], "o", color=colors[m], ms=6, zorder=3)
            if row != "AUC":
                ax.set_ylim(bottom=0)
            ax.set_xticks(x, methods, rotation=60, ha="right", fontsize=8)
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.grid(axis="y", alpha=0.3)
            if i == 0:
                ax.set_title(row if row == "AUC" else row.replace("FPR gap ", "FPR gap: "), fontsize=10)
            if j == 0:
                ax.set_ylabel(f"{config_title(loss)} detector", fontsize=9)
    return fig


def decisions_table(decisions: pd.DataFrame, loss: str) -> pd.DataFrame:
    """Per subgroup: share, detector FPR, and mean rows removed (DS) / duplicated (US<K>) over seeds."""
    sub = decisions[decisions["config"] == loss]
    sub = sub[(sub["method"] == "DS") & (sub["step"] == "down") | sub["method"].str.match(r"^US[\d.]+$")]
    if sub.empty:
        return pd.DataFrame()
    first = sub.drop_duplicates(["attribute", "group"]).set_index(["attribute", "group"])
    out = pd.DataFrame(
        {
            "n": first["n"].round(0).astype("Int64"),
            "share": first["share"].round(3),
            "detector FPR": first["fpr"].round(3),
            "overall FPR": first["overall_fpr"].round(3),
        }
    )
    for method, rows in sub.groupby("method", sort=False):
        step = "removed" if method == "DS" else "duplicated"
        rows = rows.set_index(["attribute", "group"])
        out[f"{method} {step}"] = rows["n_selected"].round(1)
    out = out.reset_index()
    small = out["n"] < SMALL_GROUP  # a small group's FPR rests on few rows: its n stays in sight
    out.loc[small, "group"] = [f"{g} (n={n})" for g, n in zip(out.loc[small, "group"], out.loc[small, "n"])]
    return out


def sizes_table(sizes: pd.DataFrame) -> pd.DataFrame:
    """Training-set size after resampling (mean over seeds), methods as columns, losses as rows."""
    mean = sizes.groupby(["config", "method"], sort=False)["n_after"].mean().round(0)
    wide = mean.unstack("method").rename_axis(columns=None)
    order = list(dict.fromkeys(sizes["method"]))
    wide = wide[[m for m in order if m in wide.columns]]
    wide.index = [config_title(c) for c in wide.index]
    return wide.astype("Int64").reset_index(names="detector")


@register_section(KIND)
def gce_tables(ctx) -> list[Section]:
    summary = ctx.tables.get("gce_summary")
    if summary is None or not len(summary):
        return []
    losses = list(dict.fromkeys(summary["config"]))
    methods = list(dict.fromkeys(summary["method"]))
    main = [m for m in methods if m != BEFORE and "@" not in m] + [BEFORE]
    per_attr = [m for m in methods if "@" in m]
    n_seeds = int(summary["n_seeds"].max())
    spread = (
        f"mean over {n_seeds} seeds ± half the width of the {int(100 * 0.95)}% t-interval over seeds"
        if n_seeds > 1
        else "one seed ± half the width of its bootstrap interval (when the audit bootstrapped)"
    )
    caption = (
        "Rows: overall test AUC and the FPR gap of each attribute; columns: the methods. Each cell: "
        f"{spread}, and in brackets the relative change vs Before (↑ higher, ↓ lower). {FPR_GAP_NOTE}"
    )
    tables: dict[str, pd.DataFrame] = {}
    sizes = ctx.tables.get("gce_sizes")
    for loss in losses:
        title = config_title(loss)
        main_no, per_no = (f"Table {n}: " for n in TABLE_NUMBERS[loss]) if loss in TABLE_NUMBERS else ("", "")
        growth = growth_text(sizes, loss) if sizes is not None and len(sizes) else ""
        growth = f" The {growth}." if growth else ""
        table = ctx.tables.get(f"gce_table_{loss}")
        if table is not None and len(table):
            tables[f"{main_no}{title} detector — DS, US K%, D&U K% vs Before.{growth} {caption}"] = table
        per = ctx.tables.get(f"gce_per_attribute_{loss}")
        if per is not None and len(per):
            tables[
                f"{per_no}{title} detector — upsampling driven by one attribute at a time "
                f"(US K%@attribute) vs Before. {caption}"
            ] = per
    figures, captions = [], []
    fig = bars_figure(summary, losses, main)
    figures.append(ctx.save(fig, "gce_fpr_gap_by_method"))
    captions.append(
        "Overall test AUC and FPR gap per attribute for each method (bars: mean over seeds; error bars: "
        "interval as in the tables; dashed line: Before). " + FPR_GAP_NOTE
    )
    if per_attr:
        fig = bars_figure(summary, losses, [*per_attr, BEFORE])
        figures.append(ctx.save(fig, "gce_fpr_gap_per_attribute"))
        captions.append("The same for upsampling driven by one attribute at a time.")
    intro = (
        "GCE-guided resampling (Bias Mitigation for Medical Images): a detector trained with the "
        "generalized cross-entropy (or BCE, the ablation) marks the training samples it fits most easily "
        "(lowest loss = most bias-aligned; configs named '..., highest loss first' take the other end) and "
        "the false-positive rate per subgroup. DS removes a share of those samples from large subgroups whose "
        "FPR is below the overall FPR; US K% duplicates them in subgroups whose FPR is above it (K% of the "
        "training set in total with up_of: dataset, K% of each such subgroup with up_of: subgroup); D&U does "
        "both. The classifier is then retrained on the adjusted "
        "training set and evaluated on the untouched test split. For the FPR gap lower is better; for AUC "
        "higher is better."
    )
    sections = [
        Section("GCE-guided resampling", intro=intro, figures=figures, captions=captions, tables=tables)
    ]

    decisions = ctx.tables.get("gce_decision_summary")
    dtables: dict[str, pd.DataFrame] = {}
    if decisions is not None and len(decisions):
        for loss in losses:
            table = decisions_table(decisions, loss)
            if len(table):
                dtables[
                    f"{config_title(loss)} detector: per subgroup, its training rows n, its share of the training"
                    " split, the subgroup FPR the plan used (the detector's on the training split, or the baseline"
                    " classifier's on validation with fpr_from: baseline_val), and the mean number of rows removed"
                    f" (DS) or duplicated (US K%) over seeds (0 = the subgroup was not resampled); groups under"
                    f" {SMALL_GROUP} rows carry their n in the name"
                ] = table
    if sizes is not None and len(sizes):
        dtables["Training-set size after resampling (mean over seeds)"] = sizes_table(sizes)
    if dtables:
        sections.append(
            Section(
                "GCE resampling decisions",
                intro="Which subgroups each method up- or down-sampled and by how many rows. Across "
                "attributes, removals are the union and duplications add up.",
                tables=dtables,
            )
        )
    return sections
