"""Slice search on the embedding generator: does it find the groups the generator made harder?

The ``skin`` preset of fairmed.data.synth_embeddings separates the classes less for FST 5 (x0.6)
and FST 6 (x0.45) than for the other types, and adds a spurious feature in FST 1-2. A logistic
regression (scikit-learn) is fitted on one half of each cohort and predicts the other; the slice
search then runs on those predictions (attributes fst, sex, age cut at its quartiles; depth 3).
Unit of replication: one generated cohort (its own seed). Prints, per cohort and metric, the top
three slices with their held-out effect and adjusted p-value.

    .venv/bin/python benchmarks/slices_generator.py [--cohorts 5] [--n 40000]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.metrics.slices import find_slices


def predictions(n: int, seed: int) -> pd.DataFrame:
    from sklearn.linear_model import LogisticRegression

    cohort = generate_embeddings(EmbeddingSynthConfig(preset="skin", n=n), seed=seed)
    y = cohort.table["malignant"].to_numpy()
    train = np.random.default_rng(seed).random(n) < 0.5
    model = LogisticRegression(max_iter=500).fit(cohort.embeddings[train], y[train])
    test = cohort.table.loc[~train, ["fst", "sex", "age"]].reset_index(drop=True)
    test["y_true"] = y[~train]
    test["y_score"] = model.predict_proba(cohort.embeddings[~train])[:, 1]
    return test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=5)
    parser.add_argument("--n", type=int, default=40_000)
    args = parser.parse_args()
    firsts: dict[str, list[str]] = {"tpr": [], "auc": [], "accuracy": []}
    for seed in range(args.cohorts):
        table = predictions(args.n, seed)
        for metric, found in firsts.items():
            result = find_slices(table, ["fst", "sex", "age"], metric, seed=seed)
            top = result.slices.head(3)
            found.append(top["slice"].iloc[0] if len(top) else "-")
            shown = "; ".join(
                f"{r.slice} ({r.effect:+.3f}, p_adj {r.p_adjusted:.2g})" for r in top.itertuples(index=False)
            )
            print(f"cohort {seed} {metric:>8}: {shown}", flush=True)
    print(f"\n{args.cohorts} cohorts of {args.n} (predictions on {args.n // 2}); first slice per metric:")
    for metric, found in firsts.items():
        print(f"  {metric:>8}: " + ", ".join(f"{s} x{found.count(s)}" for s in dict.fromkeys(found)))


if __name__ == "__main__":
    main()
