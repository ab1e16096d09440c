"""Report sections of the ``channel_pruning`` study (SCP and FairPrune).

Reads the tables the study's ``analyse`` writes: ``pruning_metrics`` (one row per method and
seed: per-group precision/recall/F1, Eopp0/Eopp1/Eodd, FATE against vanilla), ``pruning_history``
(the recipe's iterations) and ``pruning_scores`` (SNNL-Fair channel scores before and after).
Shows the paper's Tables 1-2, Fig. 1 (score distributions) and Fig. 2 (FATE of Eodd per
iteration for several pr_c and layers).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from fairmed.report.sections import Section, register_section
from fairmed.report.style import PALETTE, new_figure
from fairmed.studies.pruning import KIND, history_fate, paper_table, score_distribution

TITLES = {
    "vanilla": "Vanilla",
    "fairprune": "FairPrune",
    "scp_vanilla": "SCP-Vanilla",
    "scp_fairprune": "SCP-FairPrune",
}


def method_title(method: str) -> str:
    """The paper's name of a run: "scp_vanilla pr_c=0.25" -> "SCP-Vanilla pr_c=0.25", "scp_reweight" ->
    "SCP-reweight" (sweep settings kept)."""
    name, _, setting = method.partition(" ")
    if name in TITLES:
        title = TITLES[name]
    elif name.startswith("scp_"):
        title = f"SCP-{TITLES.get(name[4:], name[4:])}"
    else:
        title = name
    return f"{title} {setting}".strip()


def _groups(metrics: pd.DataFrame) -> list[str]:
    if {"group_0", "group_1"} <= set(metrics.columns):
        return [str(metrics["group_0"].iloc[0]), str(metrics["group_1"].iloc[0])]
    return ["group 0", "group 1"]


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out.columns = [f"{a} {b}" for a, b in out.columns]
    out.index = [method_title(m) for m in out.index]
    return out.round(3)


def scp_methods(dist: pd.DataFrame) -> list[str]:
    """Every SCP run of the score table (``scp_<start model>``, sweeps included), in table order."""
    return [m for m in pd.unique(dist["method"].astype(str)) if m.startswith("scp_")] if len(dist) else []


def scores_figure(ctx, scores: pd.DataFrame):
    """Fig. 1: the SNNL-Fair scores of a layer's channels before and after pruning, one panel per
    SCP run; None when the table has no SCP run."""
    dist = score_distribution(scores)
    methods = scp_methods(dist)
    if not methods:
        return None
    cols = min(3, len(methods))
    rows = -(-len(methods) // cols)
    fig = new_figure(4.2 * cols, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    values = dist.loc[dist["method"].isin(methods), "score"].to_numpy(dtype=float)
    bins = np.linspace(np.nanmin(values), np.nanmax(values) + 1e-9, 25)
    for ax, method in zip(axes, methods):
        sub = dist[dist["method"] == method]
        for stage, color in (("before", PALETTE[0]), ("after", PALETTE[1])):
            v = sub.loc[sub["stage"] == stage, "score"].to_numpy(dtype=float)
            ax.hist(v, bins=bins, alpha=0.6, color=color, label=f"{stage} ({len(v)} channels)")
        layer = sub["layer"].iloc[0] if "layer" in sub else ""
        ax.set(xlabel="SNNL-Fair score (low = separates the groups)", ylabel="channels (count)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{method_title(method)}: {layer}")
        ax.legend()
    for ax in axes[len(methods) :]:
        ax.set_axis_off()
    return fig


def fate_figure(ctx, history: pd.DataFrame, sweep: str):
    """Fig. 2: test FATE of Eodd per iteration, one line per pr_c, per layer or per SNNL variant (mean
    over seeds)."""
    fates = history_fate(history)
    if sweep == "ratio":
        runs = fates[(fates["sweep"] == "ratio") | (fates["method"] == "scp_vanilla")]
        label = lambda rows: f"pr_c = {rows['setting'].iloc[0] or '?'}"  # noqa: E731
    elif sweep == "snnl":
        runs = fates[(fates["sweep"] == "snnl") | (fates["method"] == "scp_vanilla")]
        label = lambda rows: (  # noqa: E731
            f"SNNL {rows['setting'].iloc[0]}" if rows["sweep"].iloc[0] == "snnl" else "SNNL of scp settings"
        )
    else:
        runs = fates[(fates["sweep"] == "layer") | (fates["method"] == "scp_vanilla")]
        label = lambda rows: str(rows["layer"].iloc[0])  # noqa: E731
    fig = new_figure(5.4, 3.6)
    ax = fig.add_subplot()
    for k, (_, rows) in enumerate(runs.groupby("method", sort=False)):
        color = PALETTE[k % len(PALETTE)]
        ok = rows[rows["accepted"].astype(bool)].groupby("iteration")["test_fate_eodd"].mean()
        ax.plot(ok.index, ok.to_numpy(), marker="o", color=color, label=label(rows))
        stop = rows[~rows["accepted"].astype(bool)].groupby("iteration")["test_fate_eodd"].mean()
        if len(stop):
            ax.scatter(stop.index, stop.to_numpy(), marker="x", color=color)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="pruning iteration", ylabel="FATE of Eodd (test, vs vanilla)")
    ax.legend(title="pruned layer" if sweep == "layer" else None)
    return fig


@register_section(KIND)
def pruning_sections(ctx) -> list[Section]:
    metrics = ctx.tables.get("pruning_metrics")
    history = ctx.tables.get("pruning_history")
    scores = ctx.tables.get("pruning_scores")
    sections = []
    if metrics is not None and len(metrics):
        groups = _groups(metrics)
        table = _flat(paper_table(metrics, groups))
        n_seeds = metrics["seed"].nunique() if "seed" in metrics else 1
        sections.append(
            Section(
                "Fairness through channel pruning: methods compared",
                intro=(
                    f"Test-set precision, recall and F1 (macro over classes) of each group, their average and "
                    f"difference, the multi-class criteria Eopp0, Eopp1 and Eodd (lower is fairer), and FATE "
                    f"against the vanilla model (accuracy = the groups' average F1, lambda = 1; higher is a "
                    f"better trade-off), mean over {n_seeds} seed(s). Methods: "
                    + ", ".join(method_title(m) for m in table.index.map(str))
                    + "."
                ),
                tables={"Tables 1-2 of the paper, for this study": table},
            )
        )
    if scores is not None and len(scores) and history is not None:
        figures, captions = [], []
        fig = scores_figure(ctx, scores)
        if fig is not None:
            figures.append(ctx.save(fig, "pruning_scores"))
            captions.append(
                "SNNL-Fair scores of the pruned layer's channels before the first and after the last pruning step."
            )
        for sweep, name, caption in (
            (
                "ratio",
                "pruning_fate_ratio",
                "FATE of Eodd per iteration for several pr_c (x: the stopping step).",
            ),
            ("layer", "pruning_fate_layer", "FATE of Eodd per iteration when pruning different layers."),
            (
                "snnl",
                "pruning_fate_snnl",
                "FATE of Eodd per iteration with the paper's SNNL (Eq. 1, the scp settings) and the authors'"
                " code's variant (cosine distance, the sample itself in the numerator).",
            ),
        ):
            if (history.get("sweep", pd.Series(dtype=str)) == sweep).any():
                figures.append(ctx.save(fate_figure(ctx, history, sweep), name))
                captions.append(caption)
        runs = history[history["iteration"] > 0].drop_duplicates(["method", "seed"])
        notes = [f"{r['method']} (seed {r['seed']}): stopped by {r['run_stop']}" for _, r in runs.iterrows()]
        sections.append(
            Section("Channel scores and pruning iterations", figures=figures, captions=captions, notes=notes)
        )
    return sections
