"""ROC and calibration curves per group, drawn from Predictions (seeds pooled per configuration).

The numbers in the legends (AUC, ECE) come from Results, i.e. from the audit, so the report
never recomputes a statistic; the curves are only the picture behind those numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.metrics.calibration import reliability_table
from fairmed.metrics.roc import roc_vertices
from fairmed.report.context import ReportContext
from fairmed.report.core.groups import assign, group_specs
from fairmed.report.plots import curve_grid
from fairmed.report.sections import Section
from fairmed.report.style import figure_name
from fairmed.report.tidy import SplitResults, choose_split, comparison_keys, run_label
from fairmed.schema import OVERALL, PROBA_PREFIX, Y_SCORE, Y_TRUE

GRID = np.linspace(0.0, 1.0, 201)
BINS = 10
MIN_PER_BIN = 5
MAX_PANELS = 15
MAX_GROUPS = 6  # curves per panel, besides the whole population


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (FPR, TPR) on a fixed grid of FPR values (the vertices of ``roc_vertices``)."""
    fpr, tpr, _ = roc_vertices(score, y)
    return GRID, np.interp(GRID, fpr, tpr)


def reliability(y: np.ndarray, prob: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """Mean predicted probability and observed frequency per equal-width bin, from the audit's
    ``reliability_table`` (the bins its ECE uses); bins with fewer than MIN_PER_BIN images dropped."""
    table = reliability_table(y, prob, n_bins=bins)
    table = table[table["n"] >= MIN_PER_BIN]
    return table["mean_score"].to_numpy(dtype=float), table["fraction_positive"].to_numpy(dtype=float)


def _columns(ctx: ReportContext) -> tuple[str, str]:
    """The label and score columns: those the audit recorded (``--label/--score``), else the schema's."""
    audit = ctx.audit or {}
    return str(audit.get("label") or Y_TRUE), str(audit.get("score") or Y_SCORE)


def _scores(
    preds: pd.DataFrame, label: str = Y_TRUE, score: str = Y_SCORE
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(kind, y, score): binary scores, or top-label confidence/correctness for multi-class."""
    if label not in preds.columns:
        return None
    y = pd.to_numeric(preds[label], errors="coerce").to_numpy()
    if score in preds.columns:
        return "binary", y, pd.to_numeric(preds[score], errors="coerce").to_numpy(dtype=float)
    cols = [c for c in preds.columns if c.startswith(PROBA_PREFIX) and c[len(PROBA_PREFIX) :].isdigit()]
    cols.sort(key=lambda c: int(c[len(PROBA_PREFIX) :]))
    if not cols:
        return None
    proba = preds[cols].to_numpy(dtype=float)
    correct = (proba.argmax(axis=1) == y).astype(float)
    return "multiclass", correct, proba.max(axis=1)


def _legend_value(split: SplitResults, attribute: str, group: str, metric: str, mask_keys: dict) -> str:
    rows = split.overall if group == OVERALL else split.groups[split.groups["attribute"] == attribute]
    rows = rows[(rows["group"].astype(str) == group) & (rows["metric"] == metric)]
    for key, value in mask_keys.items():
        rows = rows[rows[key].astype(str) == value]
    if rows.empty:
        return group
    return f"{group} ({metric.upper()} {rows['value'].mean():.2f})"


def curve_sections(ctx: ReportContext, split: SplitResults) -> list[Section]:
    """One ROC and one calibration figure per attribute, panels per configuration."""
    if ctx.predictions is None:
        return []
    preds = choose_split(ctx.predictions)
    label, score_column = _columns(ctx)
    scored = _scores(preds, label, score_column)
    if scored is None:
        return [
            _not_drawn(f"the predictions have no label column {label!r} and score column {score_column!r}")
        ]
    kind, y, score = scored
    attributes = list(dict.fromkeys(split.groups["attribute"].astype(str)))
    specs = group_specs(ctx, attributes)
    keys = comparison_keys(split.varying)
    panel = run_label(preds, keys).to_numpy()
    canonical = list(dict.fromkeys(run_label(split.groups, keys)))
    present = set(panel)
    panels = (
        [p for p in canonical if p in present] + [p for p in dict.fromkeys(panel) if p not in canonical]
    )[:MAX_PANELS]
    # config x method: one row per config, one column per method
    ncols = preds["method"].nunique() if len(keys) >= 2 and "method" in keys else None
    ncols = ncols if ncols and ncols <= 4 else None
    shown = (
        [f"Curves are shown for the first {MAX_PANELS} of {len(present)} configurations."]
        if len(present) > MAX_PANELS
        else []
    )
    shown += [
        f"{a}: no curves, its groups could not be reproduced from the predictions' columns."
        for a in attributes
        if a not in specs
    ]
    roc_figs, cal_figs = [], []
    for attribute, spec in specs.items():
        groups = assign(preds, spec).astype(object).to_numpy()
        # many groups (intersections) make unreadable curves: draw the largest ones, say so
        sizes = pd.Series(groups[pd.notna(groups)]).value_counts()
        drawn = set(sizes.index[:MAX_GROUPS].astype(str))
        if len(sizes) > MAX_GROUPS:
            shown.append(
                f"{attribute}: curves of the {MAX_GROUPS} largest of {len(sizes)} groups "
                "(all groups are in the forest plot)."
            )
        roc: dict[str, dict] = {}
        cal: dict[str, dict] = {}
        for p in panels:
            in_panel = panel == p
            mask_keys = dict(zip(keys, p.split(" · "))) if keys else {}
            roc[p], cal[p] = {}, {}
            for group in [
                *sorted({g for g in groups[in_panel] if isinstance(g, str) and g in drawn}),
                OVERALL,
            ]:
                m = in_panel & ((groups == group) if group != OVERALL else True)
                yy, ss = y[m], score[m]
                if kind == "binary" and 0 < yy.sum() < len(yy):
                    roc[p][group] = (
                        *roc_points(yy, ss),
                        _legend_value(split, attribute, group, "auc", mask_keys),
                    )
                if len(yy) >= MIN_PER_BIN:
                    cal[p][group] = (
                        *reliability(yy, ss),
                        _legend_value(split, attribute, group, "ece", mask_keys),
                    )
        if kind == "binary" and any(roc.values()):
            fig = curve_grid(roc, ctx.colors, "roc", attribute, ncols=ncols)
            roc_figs.append(ctx.save(fig, figure_name("roc", attribute)))
        if any(cal.values()):
            fig = curve_grid(
                cal, ctx.colors, "calibration" if kind == "binary" else "confidence", attribute, ncols=ncols
            )
            cal_figs.append(ctx.save(fig, figure_name("calibration", attribute)))
    if not roc_figs and not cal_figs:
        return [_not_drawn("no group has enough images with both classes", shown)]
    pooled = "Seeds are pooled within each configuration; " if "seed" in split.varying else ""
    sections = []
    if cal_figs:
        what = "predicted probability" if kind == "binary" else "top-label confidence"
        sections.append(
            Section(
                "Calibration by group",
                intro=(
                    f"Does a {what} of 0.8 mean the same thing for every group? Points on the dotted "
                    "diagonal are well calibrated; points below it mean the model is over-confident for "
                    "that group. " + pooled + f"bins with fewer than {MIN_PER_BIN} images are left out. "
                    "ECE in the legend comes from the audit (mean over seeds)."
                ),
                figures=cal_figs,
                notes=shown,
            )
        )
    if roc_figs:
        sections.append(
            Section(
                "ROC curves by group",
                intro=(
                    "How well the score separates positive from negative cases within each group, at every "
                    "threshold. A curve closer to the top-left corner is better; the dotted diagonal is chance. "
                    + pooled
                    + "AUC in the legend comes from the audit (mean over seeds)."
                ),
                figures=roc_figs,
                notes=shown,
            )
        )
    return sections


def _not_drawn(why: str, notes: list[str] | None = None) -> Section:
    """The curves' section when none can be drawn: the report says why instead of leaving it out."""
    return Section(
        "ROC and calibration curves",
        intro=f"No ROC or calibration curves: {why}.",
        notes=list(notes or []),
        key="curves",
    )
