"""fairmed's audit vs fairlearn's MetricFrame: accuracy, TPR, FPR, selection rate and AUC per group.

1,000,000 rows, 3 attributes (sex, FST 1-6, age bins), no bootstrap. fairlearn gets one MetricFrame
per attribute with scikit-learn metrics (the way it is normally used); fairmed computes those and
its other per-group metrics, gaps and criteria in one `audit` call. Prints both times, the ratio
and the largest difference between the two sets of values.

Then the cost of inference on the same rows: the audit with 1,000 bootstrap replicates only, and
with 1,000 bootstrap replicates plus the permutation tests of every gap and criterion (1,000
shuffles), and their ratio (target <= 3x). ``--inference-rows 0`` skips this part.

    .venv/bin/python benchmarks/audit_vs_fairlearn.py [--rows 1000000] [--repeat 3] [--inference-rows N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _predictions import make_predictions

ATTRS = ["sex", "fst:each", "age:40,60"]


def run_fairmed(df: pd.DataFrame) -> pd.DataFrame:
    from fairmed.metrics import audit

    res = audit(df, ATTRS, bootstrap=0, permutations=0, min_group_size=0).to_frame()
    return res[res["metric"].isin(["accuracy", "tpr", "fpr", "selection_rate", "auc"])]


def run_fairlearn(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, roc_auc_score

    def thresholded(fn):
        return lambda y, s: fn(y, (np.asarray(s) >= 0.5).astype(int))

    metrics = {
        "accuracy": thresholded(accuracy_score),
        "tpr": thresholded(true_positive_rate),
        "fpr": thresholded(false_positive_rate),
        "selection_rate": thresholded(selection_rate),
        "auc": roc_auc_score,
    }
    age_bins = pd.cut(df["age"], [-np.inf, 40, 60, np.inf], right=False, labels=["<40", "40-60", ">=60"])
    features = {"sex": df["sex"], "fst": "FST " + df["fst"].astype(str), "age": age_bins}
    out = {}
    for name, feature in features.items():
        mf = MetricFrame(
            metrics=metrics, y_true=df["y_true"], y_pred=df["y_score"], sensitive_features=feature
        )
        out[name] = mf.by_group
    return out


def best_of(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--inference-rows", type=int, default=None, help="rows of the inference timing (default: --rows)"
    )
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates and shuffles")
    args = parser.parse_args()
    df = make_predictions(args.rows)
    t_fm, fm = best_of(lambda: run_fairmed(df), args.repeat)
    t_fl, fl = best_of(lambda: run_fairlearn(df), max(1, args.repeat - 2))
    worst = 0.0
    for attribute, table in fl.items():
        ours = fm[fm["attribute"] == attribute].pivot(index="group", columns="metric", values="value")
        for group in table.index:
            for metric in table.columns:
                worst = max(worst, abs(float(ours.loc[str(group), metric]) - float(table.loc[group, metric])))
    print(f"rows: {args.rows:,}  attributes: 3 (sex 2 groups, FST 6 groups, age 3 groups)")
    print("metrics: accuracy, TPR, FPR, selection rate, AUC per group")
    print(f"{'fairmed audit':<26}{t_fm:>10.3f} s   (all 16 per-group metrics, gaps and criteria too)")
    print(f"{'fairlearn MetricFrame':<26}{t_fl:>10.3f} s")
    print(f"{'speed-up':<26}{t_fl / t_fm:>10.1f} x   (target >= 10x)")
    print(f"{'largest |difference|':<26}{worst:>10.2e}")
    rows = args.rows if args.inference_rows is None else args.inference_rows
    if rows:
        inference(df if rows == args.rows else make_predictions(rows), args.replicates)


def inference(df: pd.DataFrame, replicates: int) -> None:
    """Bootstrap only vs bootstrap + permutation tests (one run each: they take a while)."""
    from fairmed.metrics import audit

    times = {}
    for label, perms in (("bootstrap only", 0), ("bootstrap + permutations", replicates)):
        t0 = time.perf_counter()
        audit(df, ATTRS, bootstrap=replicates, permutations=perms, min_group_size=0)
        times[label] = time.perf_counter() - t0
    boot, both = times.values()
    print(f"\ninference on {len(df):,} rows, {replicates:,} bootstrap replicates / shuffles, 3 groupings")
    print(f"{'bootstrap only':<26}{boot:>10.1f} s")
    print(f"{'bootstrap + permutations':<26}{both:>10.1f} s")
    print(f"{'ratio':<26}{both / boot:>10.2f} x   (target <= 3x)")


if __name__ == "__main__":
    main()
