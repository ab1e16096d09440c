"""Analysing the benchmark: per-run measures, summaries over seeds against ERM, the Pareto table,
notes, group sizes, the plain-language statements, model selection on validation
(:mod:`.selection`) and ranks across mechanisms (:mod:`.ranking`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from fairmed.metrics.criteria import fate
from fairmed.metrics.ranks import pareto_front
from fairmed.metrics.stats import mean_interval, paired_p, stars
from fairmed.schema import OVERALL, Y_TRUE
from fairmed.studies.benchmark.ranking import ranking_tables
from fairmed.studies.benchmark.run import methods_of
from fairmed.studies.benchmark.selection import front_table, selection_summary, selection_table
from fairmed.studies.benchmark.settings import (
    BASE_METRICS,
    CRITERIA,
    FAMILY,
    GAPS,
    NOT_APPLICABLE,
    label_of,
)
from fairmed.studies.kinds import write_tables
from fairmed.studies.spec import StudySpec


def run_table(results: pd.DataFrame, attribute: str, split: str = "test") -> pd.DataFrame:
    """One row per run (config, method, seed): overall / worst-group / gap of accuracy, AUC, TPR, FPR
    and the criteria equal opportunity, equalized odds, demographic parity for ``attribute``."""
    r = results[results["split"] == split] if "split" in results.columns else results
    keys = ["config", "method", "seed"]
    sel = [
        ((r["attribute"] == OVERALL) & (r["group"] == OVERALL) & r["metric"].isin(BASE_METRICS), ""),
        ((r["attribute"] == attribute) & (r["group"] == "worst") & r["metric"].isin(BASE_METRICS), "_worst"),
        (
            (r["attribute"] == attribute) & (r["group"] == "difference") & r["metric"].isin(BASE_METRICS),
            "_gap",
        ),
        ((r["attribute"] == attribute) & (r["group"] == "criterion") & r["metric"].isin(CRITERIA), ""),
    ]
    parts = []
    for mask, suffix in sel:
        rows = r[mask]
        parts.append(rows.assign(column=rows["metric"].astype(str) + suffix)[[*keys, "column", "value"]])
    long = pd.concat(parts, ignore_index=True)
    if long.empty:
        return pd.DataFrame(columns=keys)
    wide = long.pivot_table(index=keys, columns="column", values="value", aggfunc="first", sort=False)
    wide.columns.name = None
    return wide.reset_index()


def add_fate(runs: pd.DataFrame, accuracy: str = "accuracy", baseline: str = "erm") -> pd.DataFrame:
    """``fate_<gap>`` for every gap column: FATE (lambda 1) against the baseline of the same config and
    seed, with ``accuracy`` as the accuracy; NaN where the baseline's accuracy or gap is 0 or missing."""
    out = runs.copy()
    base = runs[runs["method"] == baseline].set_index(["config", "seed"])
    idx = pd.MultiIndex.from_frame(runs[["config", "seed"]])
    acc_b = base[accuracy].reindex(idx).to_numpy(dtype=float)
    for gap in GAPS:
        if gap not in runs.columns:
            continue
        gap_b = base[gap].reindex(idx).to_numpy(dtype=float)
        ok = (acc_b != 0) & (gap_b != 0) & ~np.isnan(acc_b) & ~np.isnan(gap_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = fate(runs[accuracy].to_numpy(dtype=float), acc_b, runs[gap].to_numpy(dtype=float), gap_b)
        out[f"fate_{gap}"] = np.where(ok, value, np.nan)
    return out


def summary_table(
    runs: pd.DataFrame, test: str = "ttest", ci: float = 0.95, baseline: str = "erm"
) -> pd.DataFrame:
    """Per (config, method, measure): mean, sd, CI over seeds, the mean paired difference to the
    baseline of the same seeds, its p-value (``test``) and stars (the report's convention)."""
    measures = [c for c in runs.columns if c not in ("config", "method", "seed")]
    rows = []
    for config, part in runs.groupby("config", sort=False):
        base = part[part["method"] == baseline].set_index("seed")
        for method, sub in part.groupby("method", sort=False):
            sub = sub.set_index("seed")
            seeds = sub.index.intersection(base.index)
            for m in measures:
                mean, sd, lo, hi, n = mean_interval(sub[m].to_numpy(dtype=float), ci)
                a = sub.loc[seeds, m].to_numpy(dtype=float)
                b = base.loc[seeds, m].to_numpy(dtype=float)
                p = np.nan if method == baseline else paired_p(a, b, test)
                with np.errstate(invalid="ignore"):
                    delta = float(np.nanmean(a - b)) if len(a) and not np.isnan(a - b).all() else np.nan
                rows.append(
                    {
                        "config": config,
                        "method": method,
                        "measure": m,
                        "mean": mean,
                        "sd": sd,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": n,
                        "delta": delta,
                        "p": p,
                        "stars": "" if np.isnan(p) else stars(p),
                    }
                )
    return pd.DataFrame(rows)


def pareto_table(
    summary: pd.DataFrame, accuracy: str = "accuracy", gap: str = "equal_opportunity"
) -> pd.DataFrame:
    """Per config and method: mean accuracy and gap with their intervals, and ``front``."""
    cols = ["mean", "ci_low", "ci_high"]
    out = []
    for config, part in summary.groupby("config", sort=False):
        acc = part[part["measure"] == accuracy].set_index("method")[cols]
        gp = part[part["measure"] == gap].set_index("method")[cols]
        both = acc.merge(gp, left_index=True, right_index=True, suffixes=("_acc", "_gap"), how="inner")
        frame = pd.DataFrame(
            {
                "config": config,
                "method": both.index,
                "accuracy": both["mean_acc"].to_numpy(),
                "accuracy_low": both["ci_low_acc"].to_numpy(),
                "accuracy_high": both["ci_high_acc"].to_numpy(),
                "gap": both["mean_gap"].to_numpy(),
                "gap_low": both["ci_low_gap"].to_numpy(),
                "gap_high": both["ci_high_gap"].to_numpy(),
            }
        )
        frame["front"] = pareto_front(frame["accuracy"], frame["gap"])
        out.append(frame)
    table = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    if len(table):
        table.attrs.update(accuracy=accuracy, gap=gap)
        table["accuracy_measure"], table["gap_measure"] = accuracy, gap
    return table


def notes_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The methods that did not apply: config, method, note, and the seeds it concerns."""
    rows = predictions[predictions["split"] == NOT_APPLICABLE]
    if rows.empty or "note" not in rows.columns:
        return pd.DataFrame(columns=["config", "method", "note", "seeds"])
    seeds = rows.groupby(["config", "method", "note"], sort=False)["seed"]
    out = seeds.agg(lambda s: ", ".join(str(int(v)) for v in sorted(set(s)))).rename("seeds")
    return out.reset_index()


def group_sizes(
    predictions: pd.DataFrame, groups, split: str = "test", baseline: str = "erm"
) -> pd.DataFrame:
    """Per configuration: each group's rows and positives in ``split`` of the first seed (the
    mechanisms change the cohort, so the runner's cohort summary of the base source does not show them)."""
    from fairmed.data.groups import GroupSpec

    spec = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    rows = predictions[(predictions["split"] == split) & (predictions["method"] == baseline)]
    if rows.empty:
        return pd.DataFrame(columns=["config", "group", "n", "positives"])
    rows = rows[rows["seed"] == rows["seed"].min()]
    g = spec.assign(rows).groups.astype(object).fillna("(no group)").to_numpy()
    frame = pd.DataFrame({"config": rows["config"].to_numpy(), "group": g, "y": rows[Y_TRUE].to_numpy()})
    out = frame.groupby(["config", "group"], sort=False).agg(n=("y", "size"), positives=("y", "sum"))
    return out.reset_index()


def statements(
    summary: pd.DataFrame, gap: str, accuracy: str = "accuracy", baseline: str = "erm", alpha: float = 0.05
) -> dict[str, list[str]]:
    """Plain-language findings per configuration: ERM's gaps, which methods narrowed the chosen gap
    (significantly at ``alpha`` in the paired test, or not) and at what accuracy cost, which widened it."""
    out: dict[str, list[str]] = {}
    for config, part in summary.groupby("config", sort=False):
        g = part[part["measure"] == gap].set_index("method")
        a = part[part["measure"] == accuracy].set_index("method")
        if baseline not in g.index or baseline not in a.index:
            continue
        erm = part[part["method"] == baseline].set_index("measure")["mean"]
        gaps = ", ".join(
            f"{m[:-4].upper() if m != 'accuracy_gap' else 'accuracy'} {erm[m]:.3f}"
            for m in GAPS[:4]
            if m in erm
        )
        lines = [
            f"ERM: {accuracy} {a.loc[baseline, 'mean']:.3f}, {label_of(gap)} {g.loc[baseline, 'mean']:.3f} (its gaps: {gaps})."
        ]
        groups: dict[str, list[tuple[float, str]]] = {"sig": [], "ns": [], "wide": []}
        for method in g.index:
            d, p = g.loc[method, "delta"], g.loc[method, "p"]
            if method == baseline or np.isnan(d) or d == 0:
                continue
            da, pa = (a.loc[method, "delta"], a.loc[method, "p"]) if method in a.index else (np.nan, np.nan)
            cost = (
                ""
                if np.isnan(da)
                else (
                    f"{-da * 100:.1f} points of {accuracy} lost"
                    if da < 0
                    else f"{da * 100:.1f} points of {accuracy} gained"
                )
            )
            cost += " (significant)" if pa <= alpha else ""
            key = "wide" if d > 0 else "sig" if p <= alpha else "ns"
            flag = ", significant" if key == "wide" and p <= alpha else ""
            groups[key].append(
                (d if d < 0 else -d, f"{method} to {g.loc[method, 'mean']:.3f} (p = {p:.2g}{flag}; {cost})")
            )
        if groups["sig"]:
            lines.append("Narrowed it significantly: " + "; ".join(t for _, t in sorted(groups["sig"])) + ".")
        if groups["ns"]:
            lines.append(
                "Narrowed it, not significantly: " + "; ".join(t for _, t in sorted(groups["ns"])) + "."
            )
        if not groups["sig"] and not groups["ns"]:
            lines.append("No method narrowed it.")
        if groups["wide"]:
            lines.append("Widened it: " + "; ".join(t for _, t in sorted(groups["wide"])) + ".")
        out[str(config)] = lines
    return out


def validation_runs(spec: StudySpec, predictions: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """The run table of the ``val`` split, for model selection: the runner audits the test split
    only, so the val Predictions are audited here (point values: no bootstrap)."""
    from fairmed.metrics.audit import audit

    val = predictions[predictions["split"] == "val"] if "split" in predictions.columns else predictions[:0]
    if val.empty or not spec.groups:
        return pd.DataFrame(columns=["config", "method", "seed"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small groups in val: the audit's warnings are the test split's too
        result = audit(
            val,
            spec.group_specs()[:1],
            threshold=float(spec.audit.threshold),
            bootstrap=0,
            min_group_size=spec.audit.min_group_size,
        )
    return run_table(result.to_frame(), attribute, split="val")


def variants(spec: StudySpec) -> dict[str, str]:
    """method -> the strategy it is a variant of (its ``name``; a mitigation is its own)."""
    return {m: str((p.get("strategy") or {}).get("name", m)) for m, p in methods_of(spec).items()}


def analyse(out_dir: Path, spec: StudySpec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    """``tables/benchmark_runs``, ``benchmark_summary``, ``benchmark_pareto``, ``benchmark_notes``,
    ``benchmark_groups``, ``benchmark_selection`` (+ ``_runs``), ``benchmark_front``,
    ``benchmark_ranks``, ``benchmark_friedman``."""
    settings = spec.settings().benchmark
    attribute = spec.group_specs()[0].name if spec.groups else OVERALL
    runs = add_fate(run_table(results, attribute), settings.accuracy)
    summary = summary_table(runs, settings.test, spec.audit.ci)
    summary["family"] = summary["method"].map(FAMILY).fillna("in-processing")
    pareto = pareto_table(summary, settings.accuracy, settings.gap)
    val = validation_runs(spec, predictions, attribute)
    picks = selection_table(val, runs, settings.gap, variants(spec), settings.accuracy)
    ranked = {settings.accuracy: True, "auc_worst": True, settings.gap: False}
    ranks, friedman = ranking_tables(runs, ranked)
    write_tables(
        out_dir,
        {
            "benchmark_runs": runs.assign(attribute=attribute),
            "benchmark_summary": summary.assign(attribute=attribute, test=settings.test),
            "benchmark_pareto": pareto,
            "benchmark_notes": notes_table(predictions),
            "benchmark_groups": group_sizes(predictions, spec.groups[0])
            if spec.groups
            else pd.DataFrame(columns=["config", "group", "n", "positives"]),
            "benchmark_selection_runs": picks,
            "benchmark_selection": selection_summary(picks, spec.audit.ci).assign(gap=settings.gap),
            "benchmark_front": front_table(val, runs, settings.gap) if len(val) else pd.DataFrame(),
            "benchmark_ranks": ranks,
            "benchmark_friedman": friedman,
        },
    )
