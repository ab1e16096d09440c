"""Read tidy Results for the report: which rows are per-group values, which are gaps, which metric
to lead with, how to label a metric on an axis, and which run keys a study varies."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fairmed.schema import OVERALL, run_keys_in

# metric name in Results -> (axis label with unit, higher is better)
METRICS: dict[str, tuple[str, bool | None]] = {
    "auc": ("AUC (ROC area, 0-1)", True),
    "accuracy": ("accuracy (fraction correct)", True),
    "balanced_accuracy": ("balanced accuracy (fraction)", True),
    "tpr": ("TPR / sensitivity (fraction of positives)", True),
    "recall": ("recall (fraction of positives)", True),
    "tnr": ("TNR / specificity (fraction of negatives)", True),
    "fpr": ("FPR (fraction of negatives)", False),
    "fnr": ("FNR (fraction of positives)", False),
    "ppv": ("PPV / precision (fraction of predicted positives)", True),
    "precision": ("precision (fraction of predicted positives)", True),
    "npv": ("NPV (fraction of predicted negatives)", True),
    "f1": ("F1 score (0-1)", True),
    "f1_macro": ("macro F1 (0-1)", True),
    "precision_macro": ("macro precision (0-1)", True),
    "recall_macro": ("macro recall (0-1)", True),
    "auc_ovr": ("one-vs-rest AUC (0-1)", True),
    "selection_rate": ("selection rate (fraction predicted positive)", None),
    "prevalence": ("prevalence (fraction positive)", None),
    "ece": ("ECE (expected calibration error, probability)", False),
    "brier": ("Brier score (squared probability error)", False),
    "bce": ("cross-entropy (nats per sample)", False),
    "recon_mse": ("reconstruction MSE (per pixel)", False),
    "latent_std": ("mean latent standard deviation", None),
    "elbo": ("negative ELBO (nats per image)", False),
}
# the metrics a report leads with, in order of preference
PRIMARY = ("auc", "auc_ovr", "accuracy", "f1_macro", "recon_mse", "latent_std")
PERFORMANCE = ("auc", "auc_ovr", "accuracy", "balanced_accuracy", "f1_macro", "tpr", "fpr", "ppv", "ece")


def metric_label(metric: str) -> str:
    """Axis label with its unit; unknown metrics keep their Results name."""
    base = metric.split(":", 1)[0]
    if base in METRICS:
        return METRICS[base][0]
    for name in sorted(METRICS, key=len, reverse=True):  # recon_mse_mean -> recon_mse
        if base.startswith(name + "_"):
            return f"{METRICS[name][0]} [{base[len(name) + 1 :]}]"
    return base.replace("_", " ")


SHORT = {
    "auc": "AUC",
    "auc_ovr": "AUC",
    "tpr": "TPR",
    "fpr": "FPR",
    "tnr": "TNR",
    "fnr": "FNR",
    "ppv": "PPV",
    "npv": "NPV",
    "ece": "ECE",
    "f1": "F1",
    "f1_macro": "macro F1",
    "bce": "cross-entropy",
    "recon_mse": "MSE",
    "eopp0": "Eopp0",
    "eopp1": "Eopp1",
    "eodd": "Eodd",
}


def metric_short(metric: str) -> str:
    """A short display name ("AUC", "selection rate") for titles and tick labels."""
    return SHORT.get(metric, metric.replace("_", " "))


def higher_is_better(metric: str) -> bool | None:
    for name in sorted(METRICS, key=len, reverse=True):
        if metric == name or metric.startswith(name + "_"):
            return METRICS[name][1]
    return None


@dataclass
class SplitResults:
    """Results cut the way the report reads them (all with the same columns as Results)."""

    groups: pd.DataFrame  # per-group rows of real attributes
    overall: pd.DataFrame  # whole-population rows
    gaps: pd.DataFrame  # rows whose group names a gap/criterion, not a group
    keys: list[str]  # run keys present
    varying: list[str]  # run keys with more than one value (e.g. method, seed, config)


def choose_split(frame: pd.DataFrame) -> pd.DataFrame:
    """Keep the held-out rows: ``test`` when a ``split`` column holds it, else everything."""
    if "split" in frame.columns and (frame["split"] == "test").any():
        return frame[frame["split"] == "test"]
    return frame


BASELINE_NAMES = ("erm", "vanilla", "baseline", "none", "default")


def sort_runs(results: pd.DataFrame, hint: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows in the study's own run order, so every figure and table lists runs alike.

    Each run key keeps the order in which its values first appear in ``hint`` (the
    Predictions, written in the runner's expansion order) or else in ``results``; a
    baseline method (erm, vanilla, ...) comes first; seeds sort numerically.
    """
    keys = [k for k in run_keys_in(results.columns)]
    if not keys:
        return results
    codes = {}
    for key in keys:
        source = hint[key] if hint is not None and key in hint.columns else results[key]
        values = list(dict.fromkeys(source.astype(str)))
        values += [v for v in dict.fromkeys(results[key].astype(str)) if v not in values]
        if key == "seed":
            values.sort(
                key=lambda v: (float(v) if v.replace(".", "", 1).lstrip("-").isdigit() else float("inf"), v)
            )
        elif key == "method":
            values.sort(key=lambda v: v.lower() not in BASELINE_NAMES)  # stable: baseline first
        codes[f"_o_{key}"] = results[key].astype(str).map({v: i for i, v in enumerate(values)})
    ordered = results.assign(**codes).sort_values(list(codes), kind="stable")
    return ordered.drop(columns=list(codes))


def split_results(
    results: pd.DataFrame, group_names: set[str] | None = None, hint: pd.DataFrame | None = None
) -> SplitResults:
    """Separate per-group, overall and gap rows.

    A row is a per-group row when its group is one of the real group names of its
    attribute (``group_names`` from the cohort/predictions, or, failing that, any
    group that is not a gap/criterion label); overall rows have attribute or group
    ``overall``; everything else is a gap or criterion row.
    """
    res = sort_runs(choose_split(results), hint)
    keys = run_keys_in(res.columns)
    varying = [k for k in keys if k != "split" and res[k].nunique(dropna=False) > 1]
    attr = res["attribute"].astype(str)
    group = res["group"].astype(str)
    is_overall = (attr == OVERALL) | (group == OVERALL)
    if group_names is not None:
        is_group = group.isin(group_names) & ~is_overall
    else:
        is_group = ~is_overall & ~group.map(is_gap_label).astype(bool)
    return SplitResults(
        groups=res[is_group],
        overall=res[is_overall],
        gaps=res[~is_group & ~is_overall],
        keys=keys,
        varying=varying,
    )


GAP_WORDS = ("gap", "difference", "ratio", "worst", "std", "ser", "max-min", "min/max", "criterion")


def is_gap_label(text: str) -> bool:
    low = str(text).lower()
    return any(w in low.replace("_", " ").split() or low.startswith(w) for w in GAP_WORDS)


def primary_metric(groups: pd.DataFrame) -> str | None:
    """The metric the summary and the comparisons lead with (AUC when there is one)."""
    present = set(groups["metric"].astype(str))
    for m in PRIMARY:
        if m in present:
            return m
    for m in present:
        if any(m.startswith(p + "_") for p in PRIMARY):
            return m
    return sorted(present)[0] if present else None


def performance_metrics(groups: pd.DataFrame, limit: int = 6) -> list[str]:
    present = set(groups["metric"].astype(str))
    chosen = [m for m in PERFORMANCE if m in present]
    if not chosen:
        chosen = [m for m in sorted(present) if higher_is_better(m) is not None or m.startswith(PRIMARY)]
    return chosen[:limit] or sorted(present)[:limit]


def run_label(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """One readable label per row from the given run keys ("F50M50 · erm")."""
    if not keys:
        return pd.Series("model", index=frame.index)
    parts = [frame[k].astype(str) for k in keys]
    label = parts[0]
    for p in parts[1:]:
        label = label + " · " + p
    return label


def comparison_keys(varying: list[str]) -> list[str]:
    """The run keys a study compares (config, method), i.e. varying keys other than seed."""
    return [k for k in varying if k not in {"seed", "split", "study"}]


GAP_COLUMNS = ("attribute", "metric", "value", "ci_low", "ci_high")


def gap_rows(split: SplitResults, form: str = "difference") -> pd.DataFrame:
    """One gap form per (run, attribute, metric): run keys + attribute, metric, value, ci_low, ci_high.

    Read from the audit's gap rows (group named after the form, e.g. ``difference``, or metric
    ``<metric>_<form>``); when Results hold no gap rows the difference is max - min of the
    per-group values, without an interval.
    """
    keys = [k for k in split.keys]
    gaps = split.gaps
    if not gaps.empty:
        group = gaps["group"].astype(str).str.lower()
        metric = gaps["metric"].astype(str)
        by_group = gaps[group.str.contains(form, regex=False)]
        if not by_group.empty:
            return by_group[keys + list(GAP_COLUMNS)].reset_index(drop=True)
        suffix = "_" + form
        by_metric = gaps[metric.str.endswith(suffix)]
        if not by_metric.empty:
            out = by_metric.assign(metric=by_metric["metric"].str[: -len(suffix)])
            return out[keys + list(GAP_COLUMNS)].reset_index(drop=True)
    if split.groups.empty or form != "difference":
        return pd.DataFrame(columns=keys + list(GAP_COLUMNS))
    grouped = split.groups.groupby(keys + ["attribute", "metric"], sort=False, dropna=False)["value"]
    out = (grouped.max() - grouped.min()).rename("value").reset_index()
    out["ci_low"] = float("nan")
    out["ci_high"] = float("nan")
    return out[keys + list(GAP_COLUMNS)]
