"""Read tidy Results for the report: which rows are per-group values, which are gaps, which metric
to lead with, how to label a metric on an axis, and which run keys a study varies."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fairmed.metrics.criteria import CRITERION, GAP_FORMS, gap_values
from fairmed.metrics.groups import BOUNDED, direction
from fairmed.schema import OVERALL, run_keys_in

# metric name in Results -> axis label with its unit
METRICS: dict[str, str] = {
    "auc": "AUC (ROC area, 0-1)",
    "accuracy": "accuracy (fraction correct)",
    "balanced_accuracy": "balanced accuracy (fraction)",
    "tpr": "TPR / sensitivity (fraction of positives)",
    "recall": "recall (fraction of positives)",
    "tnr": "TNR / specificity (fraction of negatives)",
    "fpr": "FPR (fraction of negatives)",
    "fnr": "FNR (fraction of positives)",
    "ppv": "PPV / precision (fraction of predicted positives)",
    "precision": "precision (fraction of predicted positives)",
    "npv": "NPV (fraction of predicted negatives)",
    "f1": "F1 score (0-1)",
    "f1_macro": "macro F1 (0-1)",
    "precision_macro": "macro precision (0-1)",
    "recall_macro": "macro recall (0-1)",
    "auc_ovr": "one-vs-rest AUC (0-1)",
    "selection_rate": "selection rate (fraction predicted positive)",
    "prevalence": "prevalence (fraction positive)",
    "ece": "ECE (expected calibration error, probability)",
    "brier": "Brier score (squared probability error)",
    "bce": "cross-entropy (nats per sample)",
    "recon_mse": "reconstruction MSE (per pixel)",
    "latent_std": "mean latent standard deviation",
    "elbo": "ELBO (nats per image)",
}
# the metrics a report leads with, in order of preference
PRIMARY = ("auc", "auc_ovr", "accuracy", "f1_macro", "recon_mse", "latent_std")
PERFORMANCE = (
    "auc",
    "auc_ovr",
    "tpr",
    "fpr",
    "accuracy",
    "f1_macro",
    "ppv",
    "ece",
    "balanced_accuracy",
    "recon_mse",
    "latent_std",
    "elbo",
)


def metric_label(metric: str) -> str:
    """Axis label with its unit; unknown metrics keep their Results name."""
    base = metric.split(":", 1)[0]
    if base in METRICS:
        return METRICS[base]
    for name in sorted(METRICS, key=len, reverse=True):  # recon_mse_mean -> recon_mse
        if base.startswith(name + "_"):
            return f"{METRICS[name]} [{base[len(name) + 1 :]}]"
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
    """A short display name ("AUC", "selection rate", "mean MSE") for titles and tick labels."""
    if metric in SHORT:
        return SHORT[metric]
    base, _, stat = metric.rpartition("_")
    if base and stat in VALUE_STATS:
        return f"{stat} {SHORT.get(base, base.replace('_', ' '))}"
    return metric.replace("_", " ")


def metric_unit(metric: str) -> str:
    """The unit part of a metric's axis label ("fraction of positives"), or ''."""
    label = metric_label(metric).split(" [", 1)[0]
    return label[label.find("(") + 1 : label.rfind(")")] if "(" in label else ""


def gap_label(metric: str) -> str:
    """Axis label of a gap: "TPR gap (max - min, fraction of positives)"."""
    unit = metric_unit(metric)
    return f"{metric_short(metric)} gap (max - min{', ' + unit if unit else ''})"


def in_unit_interval(metric: str) -> bool:
    """Rates and scores bounded by [0, 1]: where a gap tolerance like 0.05 means something."""
    return metric in BOUNDED or metric in {"eopp0", "eopp1", "eodd"}


def higher_is_better(metric: str) -> bool | None:
    """The audit's direction of a metric (True: higher is better), also for ``<metric>_<stat>``."""
    for name in sorted(METRICS, key=len, reverse=True):
        if metric == name or metric.startswith(name + "_"):
            return direction(name)
    return direction(metric)


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


def split_results(results: pd.DataFrame, hint: pd.DataFrame | None = None) -> SplitResults:
    """Separate per-group, overall and gap rows of the held-out split, runs in study order.

    Overall rows have attribute or group ``overall``; gap and criterion rows have the audit's
    gap form or ``criterion`` as their group (see docs/audit.md); the rest are per-group rows.
    ``hint`` (the Predictions) gives the run order.
    """
    res = sort_runs(choose_split(results), hint)
    keys = run_keys_in(res.columns)
    varying = [k for k in keys if k != "split" and res[k].nunique(dropna=False) > 1]
    attr = res["attribute"].astype(str)
    group = res["group"].astype(str)
    is_overall = (attr == OVERALL) | (group == OVERALL)
    is_group = ~is_overall & ~group.map(is_gap_label).astype(bool)
    return SplitResults(
        groups=res[is_group],
        overall=res[is_overall],
        gaps=res[~is_group & ~is_overall],
        keys=keys,
        varying=varying,
    )


# + the audit's signed two-group difference rows (group "signed": first minus second group)
GAP_GROUPS = frozenset((*GAP_FORMS, CRITERION, "signed"))


def is_gap_label(text: str) -> bool:
    """True for the ``group`` of the audit's gap rows (``difference``, ...) and criterion rows."""
    return str(text) in GAP_GROUPS


VALUE_STATS = ("mean", "median", "q25", "q75")  # how the audit summarises per-sample values


def expand_metrics(names: tuple[str, ...], present: set[str], stats: int = 2) -> list[str]:
    """Each name as it appears in Results: itself, or its first ``stats`` per-sample summaries
    (``recon_mse_mean``, ``recon_mse_median``)."""
    out = []
    for name in names:
        if name in present:
            out.append(name)
        else:
            out += [f"{name}_{stat}" for stat in VALUE_STATS[:stats] if f"{name}_{stat}" in present]
    return out


def primary_metric(groups: pd.DataFrame) -> str | None:
    """The metric the summary and the comparisons lead with: AUC, else accuracy, else mean MSE ..."""
    present = set(groups["metric"].astype(str)) - {"n"}
    chosen = expand_metrics(PRIMARY, present)
    if chosen:
        return chosen[0]
    return sorted(present)[0] if present else None


def performance_metrics(groups: pd.DataFrame, limit: int = 6) -> list[str]:
    """The metrics of the forest plots, in a fixed reading order."""
    present = set(groups["metric"].astype(str)) - {"n"}
    chosen = expand_metrics(PERFORMANCE, present)
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
# the audit's inference columns, read where present (p-values from a permutation test; the minimum
# detectable gap): Results written before them, or by another tool, lack them
INFERENCE_COLUMNS = ("p_value", "p_adjusted", "mdg")


def gap_rows(split: SplitResults, form: str = "difference") -> pd.DataFrame:
    """One gap form per (run, attribute, metric): run keys + attribute, metric, value, ci_low, ci_high
    (+ p_value, p_adjusted, mdg where Results have them).

    Read from the audit's gap rows (``group`` = the form). Results written without gap rows
    (e.g. by another tool) get the form from the per-group values through the audit's own
    ``gap_values``, without an interval.
    """
    keys = list(split.keys)
    rows = split.gaps[split.gaps["group"].astype(str) == form]
    if not rows.empty or split.groups.empty:
        extra = [c for c in INFERENCE_COLUMNS if c in rows.columns]
        return rows[keys + list(GAP_COLUMNS) + extra].reset_index(drop=True)
    records = []
    for names, sub in split.groups.groupby(keys + ["attribute", "metric"], sort=False, dropna=False):
        forms = gap_values(sub["value"].to_numpy(dtype=float), str(names[-1]))
        if form in forms:
            records.append((*names, float(forms[form]), float("nan"), float("nan")))
    return pd.DataFrame(records, columns=keys + list(GAP_COLUMNS))


def criterion_rows(split: SplitResults) -> pd.DataFrame:
    """The audit's criterion rows: run keys + attribute, metric (criterion name), value, CI."""
    rows = split.gaps[split.gaps["group"].astype(str) == CRITERION]
    return rows[list(split.keys) + list(GAP_COLUMNS)].reset_index(drop=True)
