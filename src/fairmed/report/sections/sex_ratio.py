"""Report section of the ``composition`` study: AUC by training composition (the paper's Fig. 2).

Reads the tables the study's ``analyse`` writes: ``composition_auc`` (AUC per run and sex),
``composition_comparison`` (female vs male over seeds: Mann-Whitney U, stars, ``<``/``>``/``=``, and
the per-seed DeLong tests combined by Stouffer)
``composition_design`` (the designed counts: Table 1) and ``composition_cells`` (the LP's cells).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.report.sections import Section, register_section
from fairmed.report.style import new_figure

KIND = "composition"
METHOD_TITLES = {
    "erm": "single task (ERM)",
    "multitask": "multi-task (reinforcing)",
    "adversarial": "adversarial",
    "adversarial_reversal": "adversarial (gradient reversal)",
}
PAIR = ("female", "male")


def _order(values: pd.Series) -> list[str]:
    return list(dict.fromkeys(values.astype(str)))


def method_titles(ran: pd.DataFrame | None) -> dict[str, str]:
    """Panel titles: the strategy's name, with the adversarial optimisation that ran when recorded."""
    titles = dict(METHOD_TITLES)
    if ran is not None:
        for method, mode in zip(ran["method"].astype(str), ran["adv_mode"].astype(str)):
            base = METHOD_TITLES.get(method, method).split(" (")[0]
            if mode:
                titles[method] = f"{base} ({'gradient reversal' if mode == 'reversal' else mode})"
    return titles


def auc_figure(ctx, auc: pd.DataFrame, comparison: pd.DataFrame | None, pair=PAIR, ran=None):
    """One panel per strategy; per composition the two groups' AUC over seeds side by side."""
    methods = _order(auc["method"])
    methods = [m for m in METHOD_TITLES if m in methods] + [m for m in methods if m not in METHOD_TITLES]
    titles = method_titles(ran)
    configs = _order(auc["config"])
    fig = new_figure(1.0 + 0.8 * len(configs) * len(methods), 3.9)
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    x = np.arange(len(configs))
    width = 0.34
    data = auc[auc["group"].isin(pair)]
    lo = float(np.nanmin(data["auc"])) if len(data) else 0.5
    hi = float(np.nanmax(data["auc"])) if len(data) else 1.0
    span = max(hi - lo, 0.05)
    for ax, method in zip(axes, methods):
        sub = data[data["method"].astype(str) == method]
        for k, group in enumerate(pair):
            offset = (k - 0.5) * width
            values = [
                sub.loc[(sub["config"].astype(str) == c) & (sub["group"] == group), "auc"].dropna()
                for c in configs
            ]
            keep = [i for i, v in enumerate(values) if len(v)]
            if keep:
                box = ax.boxplot(
                    [values[i].to_numpy() for i in keep],
                    positions=x[keep] + offset,
                    widths=width * 0.9,
                    patch_artist=True,
                    showfliers=False,
                    medianprops={"color": "black"},
                )
                for patch in box["boxes"]:
                    patch.set(facecolor=ctx.color(group), alpha=0.55, edgecolor=ctx.color(group))
                for i in keep:
                    jitter = np.linspace(-0.06, 0.06, len(values[i])) if len(values[i]) > 1 else [0.0]
                    ax.scatter(
                        x[i] + offset + jitter,
                        values[i],
                        s=12,
                        color=ctx.color(group),
                        zorder=3,
                        label=group if i == keep[0] else None,
                    )
        if comparison is not None and len(comparison):
            marks = comparison[comparison["method"].astype(str) == method].set_index("config")
            for i, c in enumerate(configs):
                if c in marks.index:
                    row = marks.loc[c]
                    text = f"{row['stars']}\n{pair[0][0].upper()} {row['mark']} {pair[1][0].upper()}"
                    ax.text(x[i], hi + 0.04 * span, text, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, configs, rotation=0)
        ax.set_title(titles.get(method, method))
        ax.set_xlabel("training composition")
        ax.set_ylim(lo - 0.08 * span, hi + 0.3 * span)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test AUC")
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, title="test group", loc="outside right upper", fontsize=8)
    return fig


RAN_TITLE = (
    "What ran per strategy: the adversarial optimisation (alternating: the paper's three updates; reversal: "
    "one gradient-reversal step) and the task and sex heads' hidden widths (shared: the layer both read)"
)
COMPARISON_TITLE = (
    "Female vs male AUC: Mann-Whitney U over seeds (the paper's test: u, p, stars, mark; p_floor its "
    "smallest possible p) and DeLong per seed on the test images, signed z (female - male) combined over "
    "seeds by Stouffer (z_delong, p_delong)"
)


def floor_note(comparison: pd.DataFrame | None) -> str:
    """Next to the star legend: the stars the Mann-Whitney test cannot give with this many seeds, and
    the per-seed test that can."""
    from fairmed.metrics.stats import star_floor_note

    if comparison is None or "p_floor" not in comparison or not len(comparison):
        return ""
    n = int(comparison["n_seeds"].min())
    note = star_floor_note(float(comparison["p_floor"].max()), "Mann-Whitney U test", f"{n} seeds per sex")
    if not note:
        return ""
    if "p_delong" in comparison:
        note += (
            " The per-seed DeLong test (female vs male AUC on each seed's test images, combined over "
            "seeds by Stouffer) has no such floor: see p_delong in the comparison table."
        )
    return " " + note


CELLS_TITLE = (
    "LP cells, first seed: available after the test set, and per composition the count drawn "
    "(the LP's continuous value in brackets where rounding changed it)"
)


def cells_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (label x group x strata), ``available`` and one column per composition."""
    first = cells[cells["seed"] == cells["seed"].min()]
    dims = [c for c in first.columns if c not in ("seed", "config", "available", "solved", "count")]

    def text(row) -> str:
        exact = abs(row["solved"] - row["count"]) <= 1e-6
        return f"{row['count']}" if exact else f"{row['count']} ({row['solved']:.2f})"

    shown = first.assign(cell=first.apply(text, axis=1))
    wide = shown.pivot_table(index=dims, columns="config", values="cell", aggfunc="first", sort=False)
    wide = wide[_order(first["config"])].rename_axis(columns=None)
    available = first.groupby(dims, sort=False)["available"].first()
    wide.insert(0, "available", available.map(lambda v: "no limit" if np.isinf(v) else f"{v:g}"))
    return wide.reset_index()


@register_section(KIND)
def composition_auc(ctx) -> list[Section]:
    auc = ctx.tables.get("composition_auc")
    if auc is None or not len(auc):
        return []
    comparison = ctx.tables.get("composition_comparison")
    ran = ctx.tables.get("composition_methods")
    fig = auc_figure(ctx, auc, comparison, ran=ran)
    path = ctx.save(fig, "composition_auc_by_sex")
    tables = {}
    if ran is not None and len(ran):
        tables[RAN_TITLE] = ran
    if comparison is not None and len(comparison):
        shown = comparison.copy()
        for c in ("female_mean", "male_mean", "p", "p_floor", "z_delong", "p_delong"):
            if c in shown:
                shown[c] = shown[c].map(lambda v: f"{v:.3g}")
        tables[COMPARISON_TITLE] = shown
    overall = auc[auc["group"] == "overall"]
    if len(overall):
        summary = overall.groupby(["method", "config"], sort=False)["auc"].agg(["mean", "std", "count"])
        tables["Overall AUC per composition (mean, sd over seeds)"] = summary.round(3).reset_index()
    design = ctx.tables.get("composition_design")
    if design is not None and len(design):
        first = design[design["seed"] == design["seed"].min()]
        wide = first.pivot_table(
            index="config", columns=["label", "group"], values="count", sort=False, aggfunc="sum"
        )
        wide.columns = [f"{a} {b}" for a, b in wide.columns]
        wide["total"] = wide.sum(axis=1)
        tables["Designed training sets (train + validation), first seed"] = wide.reset_index()
    cells = ctx.tables.get("composition_cells")
    if cells is not None and len(cells):
        tables[CELLS_TITLE] = cells_table(cells)
    intro = (
        "Test AUC of every run by sex for each training composition (share of women among the training "
        "cases), one panel per training strategy; boxes and dots are the seeds. Above each pair: the "
        "Mann-Whitney U stars over the seeds (* p<=0.1, ** p<=0.01, *** p<=0.001, **** p<=1e-4, ns) and "
        "whether the female AUC is lower (F < M), higher (F > M) or not significantly different (F = M, "
        "at the level in the comparison table) "
        "than the male AUC. The test set of a seed is shared by all compositions and balanced like F50M50."
        + floor_note(comparison)
    )
    return [
        Section(
            "AUC by training-set sex composition",
            intro=intro,
            figures=[path],
            captions=["Female vs male test AUC per composition and strategy (cf. Fig. 2 of the paper)."],
            tables=tables,
        )
    ]
