"""fairmed's slice search vs AIF360's MDSS bias scan on the same planted data: found slice and time.

Data: fairmed.data.synth_predictions (FPR 0.1, doubled in ``sex=female & site=D & view=lateral``,
2% of rows), 6 attributes, the same age bins for both (fairmed's quartile cut). MDSS
(``aif360.detectors.mdss_detector.bias_scan``, Bernoulli score) scans the negatives for the subset
whose observed false positives exceed the expected (the overall FPR); it returns one subset (a set
of values per attribute, possibly several values of one attribute) and a score, without a p-value.
fairmed returns its top slice (search on half A) with a held-out p-value (half B).

Reports per table whether each found exactly the planted rows (MDSS may list every value of an
attribute, which is no condition), the rows-overlap (Jaccard) of what it found with the planted
rows, and the CPU time of the process (the machine is shared, so wall time is noisy; numpy's
threads are counted too). aif360 is a test-only dependency.

    .venv/bin/python benchmarks/slices_vs_mdss.py [--tables 10] [--rows 50000] [--penalty 1e-17]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from fairmed.data.synth_predictions import PLANTED, planted_slice_predictions
from fairmed.metrics.slices import encode_attributes, find_slices

ATTRS = ["sex", "age", "fst", "site", "view", "a6"]
TARGET = {k: [v] for k, v in PLANTED.items()}


def as_categories(table: pd.DataFrame) -> pd.DataFrame:
    """The attributes as fairmed's slice values (age in quartile bins, missing as 'missing')."""
    return pd.DataFrame(
        {
            a.name: np.asarray(a.levels + ["(none)"], dtype=object)[a.codes]
            for a in encode_attributes(table, ATTRS)
        }
    )


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def run_mdss(cats: pd.DataFrame, table: pd.DataFrame, penalty: float, iters: int) -> tuple[dict, float]:
    from aif360.detectors.mdss_detector import bias_scan

    neg = (table["y_true"] == 0).to_numpy()
    pred = (table["y_score"] >= 0.5).astype(int)[neg].reset_index(drop=True)
    expected = pd.Series(pred.mean(), index=pred.index)
    t0 = time.process_time()
    subset, _score = bias_scan(
        cats[neg].reset_index(drop=True),
        pred,
        expected,
        favorable_value=1,
        overpredicted=False,  # observed false positives above the expected
        scoring="Bernoulli",
        num_iters=iters,
        penalty=penalty,
        mode="binary",
    )
    return subset, time.process_time() - t0


def members(cats: pd.DataFrame, subset: dict) -> np.ndarray:
    out = np.ones(len(cats), bool)
    for col, values in subset.items():
        out &= cats[col].isin([str(v) for v in values]).to_numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--penalty", type=float, default=1e-17, help="MDSS penalty (aif360's default)")
    parser.add_argument("--iters", type=int, default=10, help="MDSS random restarts (aif360's default)")
    args = parser.parse_args()
    rows = []
    for seed in range(args.tables):
        table = planted_slice_predictions(args.rows, n_attrs=len(ATTRS), seed=seed)
        planted = table["planted"].to_numpy()
        cats = as_categories(table)
        t0 = time.process_time()
        result = find_slices(table, ATTRS, "fpr", seed=seed)
        t_fm = time.process_time() - t0
        first = result.slices.iloc[0]
        fm_rows = members(cats, {k: [v] for k, v in (c.split("=", 1) for c in first["slice"].split(" & "))})
        subset, t_mdss = run_mdss(cats, table, args.penalty, args.iters)
        md_rows = members(cats, subset)
        rows.append(
            {
                "seed": seed,
                "fairmed_exact": bool((fm_rows == planted).all()),
                "fairmed_jaccard": jaccard(fm_rows, planted),
                "fairmed_p_adj": first["p_adjusted"],
                "fairmed_s": t_fm,
                "mdss_exact": bool((md_rows == planted).all()),
                "mdss_jaccard": jaccard(md_rows, planted),
                "mdss_subset": "; ".join(f"{k}={','.join(map(str, v))}" for k, v in subset.items()),
                "mdss_s": t_mdss,
            }
        )
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    print(f"\n{args.tables} tables of {args.rows} rows; planted: {TARGET}")
    for name in ("fairmed", "mdss"):
        print(
            f"  {name:>7}: exact {frame[f'{name}_exact'].sum()}/{len(frame)}, median Jaccard "
            f"{frame[f'{name}_jaccard'].median():.2f}, median CPU time {frame[f'{name}_s'].median():.2f} s"
        )
    print(
        f"  time ratio (mdss / fairmed, medians): {frame['mdss_s'].median() / frame['fairmed_s'].median():.1f}"
    )


if __name__ == "__main__":
    main()
