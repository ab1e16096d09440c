"""Slice search on simulated predictions: power on a planted failing slice, false alarms on null data.

Data (fairmed.data.synth_predictions): prevalence 0.3, TPR 0.8, FPR 0.1; the planted slice
``sex=female & site=D & view=lateral`` (2% of rows) has its FPR doubled. Unit of replication: one
simulated table (a fresh seed for the data and for the discovery/test split).

For each table, three ways to give p-values to the worst slices (metric: FPR, depth 3, top 10):

- ``held-out`` (fairmed's choice): search on half A, test the top 10 on half B, Holm over 10;
- ``all-tested``: search on all rows, p from the same z, Holm (Bonferroni-like) over every slice
  searched: valid, but pays for thousands of tests;
- ``naive``: search on all rows, Holm over the top 10 only, ignoring the search: not valid.

Planted tables: share where the planted slice is ranked first, share where it is significant.
Null tables (FPR factor 1): the family-wise error rate (share of tables with any significant
slice), with a 95% Clopper-Pearson interval.

    .venv/bin/python benchmarks/slices_planted.py [--planted 50] [--null 200] [--rows 50000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import special, stats

from fairmed.data.synth_predictions import PLANTED, planted_slice_predictions
from fairmed.metrics.multiplicity import holm
from fairmed.metrics.slice_stats import make_statistic
from fairmed.metrics.slices import (
    encode_attributes,
    find_slices,
    fold_redundant,
    search,
    slice_name,
)

ATTRS = ["sex", "age", "fst", "site", "view", "a6"]
TARGET = " & ".join(f"{k}={v}" for k, v in PLANTED.items())


def full_data_search(table, alpha: float, top: int) -> tuple[str, bool, bool, bool]:
    """(first slice, the planted slice significant by Holm over all searched, any slice so,
    any slice significant by Holm over the top only)."""
    attributes = encode_attributes(table, ATTRS)
    stat = make_statistic(table, "fpr")
    found = search(attributes, stat, np.arange(len(table)), depth=3)
    best = fold_redundant(found, stat, top, fold_z=1.96)
    if best.empty:
        return "", False, False, False
    c = found.candidates
    sig_all = holm(special.ndtr(-c["z"].to_numpy())) <= alpha
    names = {slice_name(attributes, a, v) for a, v in zip(c["attrs"][sig_all], c["values"][sig_all])}
    p_top = special.ndtr(-best["z"].to_numpy())
    first = slice_name(attributes, best["attrs"].iloc[0], best["values"].iloc[0])
    return first, TARGET in names, bool(sig_all.any()), bool((holm(p_top) <= alpha).any())


def run(n_tables: int, rows: int, factor: float, alpha: float, top: int, seed0: int) -> dict[str, list]:
    out: dict[str, list] = {
        k: [] for k in ("first", "sig", "any", "first_all", "sig_all", "any_all", "any_naive", "t")
    }
    for seed in range(seed0, seed0 + n_tables):
        table = planted_slice_predictions(rows, n_attrs=len(ATTRS), fpr_factor=factor, seed=seed)
        t0 = time.perf_counter()
        result = find_slices(table, ATTRS, "fpr", top=top, alpha=alpha, seed=seed)
        out["t"].append(time.perf_counter() - t0)
        s = result.slices
        out["first"].append(len(s) > 0 and s["slice"].iloc[0] == TARGET)
        out["sig"].append(bool(s.loc[s["slice"] == TARGET, "significant"].any()))
        out["any"].append(bool(s["significant"].any()))
        first, sig_all, any_all, any_naive = full_data_search(table, alpha, top)
        out["first_all"].append(first == TARGET)
        out["sig_all"].append(sig_all)
        out["any_all"].append(any_all)
        out["any_naive"].append(any_naive)
    return out


def share(flags: list[bool]) -> str:
    k, n = int(np.sum(flags)), len(flags)
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planted", type=int, default=50, help="tables with the planted slice")
    parser.add_argument("--null", type=int, default=200, help="null tables")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument(
        "--other-null", type=int, default=0, help="null tables for recon_mse (gamma values) and auc, held-out"
    )
    args = parser.parse_args()
    print(f"rows {args.rows}, attributes {ATTRS}, depth 3, top {args.top}, alpha {args.alpha}")
    if args.planted:
        p = run(args.planted, args.rows, 2.0, args.alpha, args.top, seed0=0)
        print(f"\nplanted slice {TARGET} (FPR 0.1 -> 0.2, 2% of rows), {args.planted} tables:")
        print(f"  held-out:   ranked first {share(p['first'])}; significant {share(p['sig'])}")
        print(f"  all-tested: ranked first {share(p['first_all'])}; significant {share(p['sig_all'])}")
        print(f"  find_slices time per table: median {np.median(p['t']):.2f} s")
    if args.null:
        z = run(args.null, args.rows, 1.0, args.alpha, args.top, seed0=10_000)
        print(
            f"\nnull tables (no slice differs), {args.null} tables; family-wise error rate at {args.alpha}:"
        )
        print(f"  held-out (Holm over top {args.top} on half B): {share(z['any'])}")
        print(f"  all-tested (Holm over every slice searched):   {share(z['any_all'])}")
        print(f"  naive (Holm over top {args.top}, same data):      {share(z['any_naive'])}")
    if args.other_null:
        alarms: dict[str, list[bool]] = {"recon_mse": [], "auc": []}
        for seed in range(20_000, 20_000 + args.other_null):
            table = planted_slice_predictions(args.rows, n_attrs=len(ATTRS), fpr_factor=1.0, seed=seed)
            table["recon_mse"] = np.random.default_rng(seed).gamma(2.0, 0.01, len(table))  # skewed
            for metric, flags in alarms.items():
                result = find_slices(table, ATTRS, metric, top=args.top, alpha=args.alpha, seed=seed)
                flags.append(bool(result.slices["significant"].any()))
        print(f"\nnull tables, {args.other_null} tables; held-out family-wise error rate at {args.alpha}:")
        for metric, flags in alarms.items():
            print(
                f"  {metric:>9} ({'pooled z' if metric != 'auc' else 'DeLong z'} on half B): {share(flags)}"
            )


if __name__ == "__main__":
    main()
