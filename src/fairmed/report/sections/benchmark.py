"""Report sections of the ``benchmark`` study: every mitigation side by side, per injected mechanism.

Reads the tables the study's ``analyse`` writes (``benchmark_summary``, ``benchmark_pareto``,
``benchmark_notes``): per mechanism, a table per metric (mean, 95 % t-interval over seeds and the
paired test against ERM for the overall value, the worst group, the gap and FATE), the Pareto
table, plain-language statements, and one figure of accuracy vs gap with a panel per mechanism;
then the average ranks across mechanisms with the Friedman test and a critical-difference diagram
per measure (``benchmark_ranks``, ``benchmark_friedman``), and per mechanism what each
model-selection rule picks on validation (``benchmark_selection``, ``benchmark_front``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from fairmed.report.cd_diagram import draw_cd
from fairmed.report.sections import Section, register_section
from fairmed.report.style import PALETTE, new_figure
from fairmed.studies.benchmark import (
    BASE_METRICS,
    CRITERIA,
    FAMILY,
    KIND,
    MITIGATIONS,
    STRATEGIES,
    label_of,
    statements,
)

ORDER = (*STRATEGIES, *MITIGATIONS)
MARKERS = {"in-processing": "o", "pre-processing": "s", "post-processing": "^", "pruning": "D"}
TITLES = {
    "erm": "ERM",
    "reweight": "reweight",
    "resample": "resample",
    "multitask": "multitask",
    "adversarial": "adversarial",
    "groupdro": "GroupDRO",
    "gce": "GCE resampling",
    "thresholds": "group thresholds",
    "reject_option": "reject option",
    "calibrated_eqodds": "calibrated equalized odds",
    "fairprune": "FairPrune",
    "scp": "SCP",
}


def method_order(methods) -> list[str]:
    present = list(dict.fromkeys(str(m) for m in methods))
    return [m for m in ORDER if m in present] + [m for m in present if m not in ORDER]


COLORS = {  # fixed, distinct colours from the report palette (Okabe-Ito + Tol muted); ERM black
    "erm": "#000000",
    "reweight": "#0072B2",
    "resample": "#E69F00",
    "multitask": "#009E73",
    "adversarial": "#CC79A7",
    "groupdro": "#D55E00",
    "gce": "#56B4E9",
    "thresholds": "#999933",
    "reject_option": "#332288",
    "calibrated_eqodds": "#AA4499",
    "fairprune": "#882255",
    "scp": "#44AA99",
}


def method_colors(methods) -> dict[str, str]:
    """One colour per method, the same in every panel; unknown methods take the palette's unused colours."""
    spare = [c for c in PALETTE if c not in COLORS.values()]
    out, k = {}, 0
    for m in method_order(methods):
        if m in COLORS:
            out[m] = COLORS[m]
        else:
            out[m] = spare[k % len(spare)]
            k += 1
    return out


def _cell(row) -> str:
    if row is None or np.isnan(row["mean"]):
        return "n/a"
    text = f"{row['mean']:.3f}"
    if not np.isnan(row["ci_low"]):
        text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    if row["method"] != "erm" and row["stars"]:
        text += f" {row['stars']}"
    return text


def metric_table(part: pd.DataFrame, columns: dict[str, str], notes: dict[str, str]) -> pd.DataFrame:
    """Rows = methods, columns = ``{measure: heading}``, cells 'mean [CI] stars'; not-applicable rows."""
    by = {(r["method"], r["measure"]): r for _, r in part.iterrows()}
    methods = method_order(list(part["method"]) + list(notes))
    rows = []
    for m in methods:
        if m in notes and not any((m, c) in by for c in columns):
            rows.append(
                {"method": TITLES.get(m, m), **{h: "n/a" for h in columns.values()}, "note": notes[m]}
            )
            continue
        rows.append(
            {
                "method": TITLES.get(m, m),
                **{h: _cell(by.get((m, c))) for c, h in columns.items()},
                "note": notes.get(m, ""),
            }
        )
    table = pd.DataFrame(rows)  # the method is a column: the HTML tables do not show an index
    return table if table["note"].astype(bool).any() else table.drop(columns="note")


def pareto_display(pareto: pd.DataFrame, front: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean accuracy and gap per method, the front of the means, and (``front``: the
    ``benchmark_front`` table) the share of seeds each method is on the AUC-gap front of validation
    (the Pareto selection rule) and of test."""
    out = pareto[["method", "accuracy", "gap", "front"]].copy()
    out["front"] = np.where(out["front"], "front", "")
    if front is not None and len(front):
        config = pareto["config"].iloc[0]
        shares = front[front["config"] == config].set_index("method")
        for column, heading in (
            ("val_front", "on val AUC-gap front (share of seeds)"),
            ("test_front", "on test AUC-gap front"),
        ):
            out[heading] = out["method"].map(shares[column]).round(2).to_numpy()
    out["method"] = out["method"].map(lambda m: TITLES.get(m, m))
    return out.round(3).reset_index(drop=True)


REFERENCE = "erm"


def tradeoff_figure(pareto: pd.DataFrame, descriptions: dict[str, str]):
    """Accuracy vs gap, one panel per mechanism: a point per method with its 95 % interval over seeds
    (both axes, clipped to [0, 1]); the Pareto front joined by a dashed line and ringed."""
    configs = list(dict.fromkeys(pareto["config"].astype(str)))
    ncols = min(2, len(configs))
    nrows = int(np.ceil(len(configs) / ncols))
    colors = method_colors(pareto["method"])
    fig = new_figure(5.2 * ncols, 3.9 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    gap_name = label_of(str(pareto["gap_measure"].iloc[0]))
    acc_name = label_of(str(pareto["accuracy_measure"].iloc[0]))
    for ax, config in zip(axes, configs):
        part = pareto[pareto["config"].astype(str) == config]
        for _, r in part.iterrows():
            m = str(r["method"])
            x, y = float(r["gap"]), float(r["accuracy"])
            if np.isnan(x) or np.isnan(y):
                continue
            xe = np.clip([[x - r["gap_low"]], [r["gap_high"] - x]], 0, None)
            ye = np.clip([[y - r["accuracy_low"]], [r["accuracy_high"] - y]], 0, None)
            xe = np.nan_to_num(np.minimum(xe, [[x], [1 - x]]))
            ye = np.nan_to_num(np.minimum(ye, [[y], [1 - y]]))
            ax.errorbar(
                x,
                y,
                xerr=xe,
                yerr=ye,
                fmt=MARKERS.get(FAMILY.get(m, ""), "o"),
                color=colors[m],
                markersize=7,
                elinewidth=1.0,
                capsize=2.5,
                alpha=0.9,
                zorder=5 if m == REFERENCE else 3,  # ERM on top: methods that tie with it must not hide it
            )
            if m == REFERENCE:  # dotted cross-hair: up-left of it is fairer and more accurate than ERM
                ax.axvline(x, color="black", linestyle=":", linewidth=0.8, zorder=1)
                ax.axhline(y, color="black", linestyle=":", linewidth=0.8, zorder=1)
        front = part[part["front"].astype(bool)].sort_values("gap")
        if len(front):
            ax.plot(front["gap"], front["accuracy"], "--", color="#555555", linewidth=1.0, zorder=2)
            ax.scatter(
                front["gap"],
                front["accuracy"],
                s=190,
                facecolors="none",
                edgecolors="#555555",
                linewidths=1.2,
                zorder=4,
            )
        title = config if not descriptions.get(config) else f"{config}"
        ax.set_title(title)
        ax.set(xlabel=f"{gap_name} (lower is fairer)", ylabel=acc_name)
        ax.set_xlim(left=max(0.0, ax.get_xlim()[0]))
    for ax in axes[len(configs) :]:
        ax.set_visible(False)
    handles = [
        Line2D(
            [],
            [],
            marker=MARKERS.get(FAMILY.get(m, ""), "o"),
            color=colors[m],
            linestyle="",
            markersize=7,
            label=TITLES.get(m, m),
        )
        for m in method_order(pareto["method"])
    ]
    handles.append(
        Line2D(
            [],
            [],
            marker="o",
            markersize=12,
            markerfacecolor="none",
            markeredgecolor="#555555",
            linestyle="--",
            color="#555555",
            label="Pareto front",
        )
    )
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3 * ncols))
    return fig


RULE_TITLES = {
    "auc": "highest overall AUC",
    "worst_auc": "highest worst-group AUC",
    "gap": "smallest gap",
    "dto": "distance to utopia (AUC, gap)",
}


def cd_figure(ranks: pd.DataFrame, tests: pd.DataFrame):
    """One critical-difference diagram per ranked measure (rows of ``benchmark_friedman``)."""
    measures = list(tests["measure"].astype(str))
    k = int(tests["k"].max())
    fig = new_figure(7.5, (0.45 * ((k + 1) // 2) + 1.6) * len(measures))
    axes = np.atleast_1d(fig.subplots(len(measures), 1, squeeze=False)).ravel()
    for ax, (_, t) in zip(axes, tests.iterrows()):
        part = ranks[ranks["measure"].astype(str) == str(t["measure"])]
        names = [TITLES.get(m, m) for m in part["method"].astype(str)]
        blocks = "configurations" if str(t["unit"]).startswith("configuration") else "seeds"
        title = f"{label_of(str(t['measure']))}: Friedman p = {t['p']:.2g} over {int(t['n'])} {blocks}"
        draw_cd(ax, names, part["average_rank"].to_numpy(dtype=float), float(t["cd"]), title)
    return fig


def ranks_section(ranks: pd.DataFrame | None, tests: pd.DataFrame | None, ctx) -> Section | None:
    """Average ranks across mechanisms, the Friedman test and the CD diagrams."""
    if ranks is None or tests is None or tests.empty:
        return None
    table = ranks.pivot_table(index="method", columns="measure", values="average_rank", sort=False)
    table = table.reindex(method_order(table.index)).round(2)
    table.index = [TITLES.get(m, m) for m in table.index]
    table.columns = [f"rank: {label_of(c)}" for c in table.columns]
    tests_display = tests.assign(measure=tests["measure"].map(label_of)).round(
        {"chi2": 2, "p_chi2": 4, "f": 2, "p": 4, "cd": 2}
    )
    unit = str(tests["unit"].iloc[0])
    return Section(
        "Benchmark: ranks across mechanisms",
        intro=(
            f"Methods ranked within each block ({unit}; 1 = best: highest accuracy or worst-group AUC, "
            "smallest gap), ranks averaged over blocks (Demsar 2006). The Friedman test asks whether any "
            "method ranks differently from the others (p from Iman and Davenport's F; chi2 and its p as "
            "scipy computes them); Nemenyi's critical difference (CD, alpha 0.05) is the smallest "
            "difference of average ranks that tells two methods apart. Methods joined by a bar are not "
            "significantly different. With few blocks the CD is wide: with 5 blocks and 12 methods the "
            "Nemenyi test had no power to separate a method 2 sd better than a typical one (measured, "
            "docs/benchmark.md), so a bar means 'not told apart', never 'equal'."
        ),
        figures=[ctx.save(cd_figure(ranks, tests), "benchmark_cd")],
        captions=[
            "Critical-difference diagrams, one per measure: average rank of each method (1 = best, left); "
            "bar on top: Nemenyi's CD; thick bars: methods within one CD of each other."
        ],
        tables={
            "Average ranks": table.reset_index(names="method"),
            "Friedman test and critical difference": tests_display.reset_index(drop=True),
        },
        key="benchmark-ranks",
    )


def selection_display(selection: pd.DataFrame, config: str) -> pd.DataFrame:
    """Per rule (and candidate set): what it picked over seeds and the picks' mean test values."""
    sub = selection[selection["config"].astype(str) == config]
    gap = str(sub["gap"].iloc[0]) if "gap" in sub and len(sub) else "gap"
    out = pd.DataFrame(
        {
            "rule": sub["rule"].map(lambda r: RULE_TITLES.get(r, r)),
            "among": sub["candidates"].map(lambda c: "all methods" if c == "(any)" else f"variants of {c}"),
            "picked (seeds)": sub["chosen"],
        }
    )
    for column, heading in (
        ("test_accuracy", "test accuracy"),
        ("test_auc", "test AUC"),
        ("test_auc_worst", "test worst-group AUC"),
        (f"test_{gap}", f"test {label_of(gap)}"),
    ):
        if column in sub:
            out[heading] = sub[column].round(3).to_numpy()
    return out.reset_index(drop=True)


def _notes(notes: pd.DataFrame | None, config: str, n_seeds: int = 0) -> dict[str, str]:
    """method -> its note(s) in this configuration; the seeds are named when not every seed failed."""
    if notes is None or notes.empty:
        return {}
    sub = notes[notes["config"].astype(str) == config]
    out: dict[str, list[str]] = {}
    for _, r in sub.iterrows():
        listed = str(r.get("seeds") or "")
        partial = listed and len(listed.split(",")) < n_seeds
        seeds = f" (seeds {listed})" if partial else ""
        out.setdefault(str(r["method"]), []).append(f"{r['note']}{seeds}")
    return {m: "; ".join(v) for m, v in out.items()}


def _descriptions(ctx) -> dict[str, str]:
    spec = ctx.spec or {}
    mechs = (spec.get("benchmark") or {}).get("mechanisms") or []
    return {str(m.get("name")): str(m.get("description") or "") for m in mechs if isinstance(m, dict)}


@register_section(KIND)
def benchmark_sections(ctx) -> list[Section]:
    summary = ctx.tables.get("benchmark_summary")
    pareto = ctx.tables.get("benchmark_pareto")
    notes = ctx.tables.get("benchmark_notes")
    groups = ctx.tables.get("benchmark_groups")
    selection = ctx.tables.get("benchmark_selection")
    front = ctx.tables.get("benchmark_front")
    if summary is None or summary.empty:
        return []
    spec = ctx.spec or {}
    settings = spec.get("benchmark") or {}
    gap = settings.get("gap", "equal_opportunity")
    accuracy = settings.get("accuracy", "accuracy")
    test = str(summary["test"].iloc[0]) if "test" in summary else "ttest"
    attribute = str(summary["attribute"].iloc[0]) if "attribute" in summary else "the first grouping"
    n_seeds = int(summary["n"].max())
    test_name = "paired t-test" if test == "ttest" else "Wilcoxon signed-rank test"
    descriptions = _descriptions(ctx)
    intro = (
        f"Every method ran on the same splits and seeds ({n_seeds} seeds) of each configuration, with the same "
        f"model, training settings and model-selection rule. Cells: mean over seeds [95 % t-interval over seeds]; "
        f"stars: {test_name} against ERM paired by seed (**** p<=1e-4, *** p<=1e-3, ** p<=1e-2, * p<=0.1, ns). "
        f"Groups: {attribute}; worst group = the lowest value (highest for FPR); gap = max - min over groups. "
        "FATE = relative accuracy gain minus relative gap reduction against ERM of the same seed (higher is "
        "a better trade-off). With few seeds these tests have little power: 'ns' often means 'cannot tell', "
        "and with 2 seeds a t-interval is very wide."
    )
    sections = []
    if pareto is not None and len(pareto):
        fig = tradeoff_figure(pareto, descriptions)
        sections.append(
            Section(
                "Benchmark: accuracy against the fairness gap",
                intro=intro,
                figures=[ctx.save(fig, "benchmark_tradeoff")],
                captions=[
                    f"Mean {label_of(accuracy)} against the mean {label_of(gap)} on the test split, one panel per "
                    "configuration; bars: 95 % intervals over seeds (clipped to [0, 1]); ringed points joined by the "
                    "dashed line: the Pareto front (no other method is both at least as accurate and at least as fair); "
                    "dotted cross-hair: ERM (drawn on top), so a method up and left of it is fairer and more accurate."
                ],
            )
        )
    ranked = ranks_section(ctx.tables.get("benchmark_ranks"), ctx.tables.get("benchmark_friedman"), ctx)
    if ranked is not None:
        sections.append(ranked)
    for config in dict.fromkeys(summary["config"].astype(str)):
        part = summary[summary["config"].astype(str) == config]
        cnotes = _notes(notes, config, n_seeds)
        tables = {}
        for base in BASE_METRICS:
            cols = {
                base: "overall",
                f"{base}_worst": "worst group",
                f"{base}_gap": "gap",
                f"fate_{base}_gap": "FATE of the gap",
            }
            tables[f"{label_of(base)} ({config})"] = metric_table(part, cols, cnotes)
        crit = {c: label_of(c) for c in CRITERIA} | {
            f"fate_{c}": f"FATE ({c.replace('_', ' ')})" for c in CRITERIA
        }
        tables[f"Fairness criteria ({config})"] = metric_table(part, crit, cnotes)
        if pareto is not None and len(pareto):
            sub = pareto[pareto["config"].astype(str) == config]
            tables[f"Pareto table: {label_of(accuracy)} vs {label_of(gap)} ({config})"] = pareto_display(
                sub, front
            )
        if selection is not None and len(selection) and (selection["config"].astype(str) == config).any():
            tables[f"Model selection on validation ({config})"] = selection_display(selection, config)
        if groups is not None and len(groups):
            sizes = groups[groups["config"].astype(str) == config].drop(columns="config")
            tables[f"Test split of the first seed, per group ({config})"] = sizes.reset_index(drop=True)
        lines = statements(part, gap, accuracy).get(config, [])
        text = descriptions.get(config, "")
        sections.append(
            Section(
                f"Benchmark: {config}",
                intro=(f"Mechanism: {text}.\n\n" if text else "") + " ".join(lines),
                tables=tables,
                notes=[f"{TITLES.get(m, m)}: {why}" for m, why in cnotes.items()],
                key=f"benchmark-{config}",
            )
        )
    return sections
