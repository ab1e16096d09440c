"""A short terminal summary of a classification study: groups, gaps, and what mitigation bought.

Reads ``results.parquet`` (the audit of the test split): per method, each group's AUC/TPR/FPR
(mean over seeds, with the mean bootstrap interval), the worst-group gap (max - min over groups,
mean over seeds), and for each mitigation the change of the gap and of overall accuracy/AUC vs
ERM (the first method).
"""

from __future__ import annotations

import pandas as pd

from fairmed.schema import OVERALL

METRICS: tuple[str, ...] = ("auc", "tpr", "fpr")


def _mean(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return rows.groupby(keys, sort=False)[["value", "ci_low", "ci_high"]].mean()


def summary_lines(results: pd.DataFrame, split: str = "test", baseline: str | None = None) -> list[str]:
    """Lines for the terminal; empty when the results hold no per-group classification metrics."""
    res = results[results["split"] == split] if "split" in results else results
    res = res[res["metric"].isin([*METRICS, "accuracy"])]
    if res.empty or "method" not in res:
        return []
    methods = list(dict.fromkeys(res["method"]))
    baseline = baseline if baseline in methods else methods[0]
    attrs = [a for a in dict.fromkeys(res["attribute"]) if a != OVERALL]
    seeds = res["seed"].nunique() if "seed" in res else 1
    lines = [f"{split} split, mean over {seeds} seed(s); [..] = mean 95% bootstrap interval"]
    groups = res[~res["group"].isin(["difference", "ratio", "worst", "std", "ser", "criterion"])]
    per_group = _mean(groups[groups["metric"].isin(METRICS)], ["method", "attribute", "group", "metric"])
    gaps = _mean(res[res["group"] == "difference"], ["method", "attribute", "metric"])["value"]
    overall = _mean(groups[groups["attribute"] == OVERALL], ["method", "metric"])["value"]
    for method in methods:
        acc, auc = overall.get((method, "accuracy"), float("nan")), overall.get((method, "auc"), float("nan"))
        lines.append(f"{method}: overall AUC {auc:.3f}, accuracy {acc:.3f}")
        for attr in attrs:
            cells = []
            for (m, a, g, metric), row in per_group.iterrows():
                if m == method and a == attr and metric == "auc":
                    tpr = (
                        per_group.loc[(m, a, g, "tpr"), "value"]
                        if (m, a, g, "tpr") in per_group.index
                        else float("nan")
                    )
                    fpr = (
                        per_group.loc[(m, a, g, "fpr"), "value"]
                        if (m, a, g, "fpr") in per_group.index
                        else float("nan")
                    )
                    cells.append(
                        f"{g}: AUC {row['value']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
                        f" TPR {tpr:.2f} FPR {fpr:.2f}"
                    )
            gap = " ".join(
                f"{metric} {gaps.get((method, attr, metric), float('nan')):.3f}" for metric in METRICS
            )
            lines.append(f"  {attr}: " + "; ".join(cells))
            lines.append(f"  {attr} worst-group gap: {gap}")
    lines += _verdict(methods, baseline, attrs, gaps, overall)
    return lines


def _verdict(methods, baseline, attrs, gaps, overall) -> list[str]:
    out = []
    nan = float("nan")
    for attr in attrs[:1]:  # the first grouping is the one the mitigations target
        base_acc = overall.get((baseline, "accuracy"), nan)
        base_auc = overall.get((baseline, "auc"), nan)
        for method in methods:
            if method == baseline:
                continue
            parts = []
            for metric in METRICS:
                before, after = gaps.get((baseline, attr, metric), nan), gaps.get((method, attr, metric), nan)
                verb = "narrowed" if after < before else "widened" if after > before else "kept"
                parts.append(f"{verb} the {attr} {metric.upper()} gap {before:.3f} -> {after:.3f}")
            out.append(
                f"{method} vs {baseline}: " + ", ".join(parts) + f" (overall accuracy"
                f" {overall.get((method, 'accuracy'), nan) - base_acc:+.3f},"
                f" AUC {overall.get((method, 'auc'), nan) - base_auc:+.3f})"
            )
    return out


__all__ = ["summary_lines"]
