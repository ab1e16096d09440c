"""1,000 stratified bootstrap replicates of all per-group binary metrics on 1,000,000 rows, 2 attributes.

fairmed draws each replicate as multinomial counts within groups and evaluates every metric
(AUC included) as weighted sums for a chunk of replicates at once. The baseline beside it is the
usual loop: per replicate, resample row indices within each group and call scikit-learn per
group (timed on a few replicates and scaled to the same count). Target: fairmed < 60 s on 2 cores.

    .venv/bin/python benchmarks/bootstrap_speed.py [--rows 1000000] [--reps 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from _predictions import make_predictions


def naive_replicates(df: pd.DataFrame, attrs: list[str], reps: int, seed: int = 0) -> float:
    """The per-replicate loop (resample indices per group, scikit-learn per group); seconds."""
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(seed)
    y = df["y_true"].to_numpy()
    s = df["y_score"].to_numpy()
    t0 = time.perf_counter()
    for attr in ["overall", *attrs]:
        keys = np.zeros(len(df), dtype=int) if attr == "overall" else pd.factorize(df[attr])[0]
        members = [np.flatnonzero(keys == k) for k in np.unique(keys)]
        for _ in range(reps):
            for idx in members:
                take = idx[rng.integers(0, len(idx), len(idx))]
                yt, st = y[take], s[take]
                pt = (st >= 0.5).astype(int)
                roc_auc_score(yt, st)
                accuracy_score(yt, pt)
                precision_score(yt, pt, zero_division=0)
                recall_score(yt, pt, zero_division=0)
                f1_score(yt, pt, zero_division=0)
                log_loss(yt, st)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--baseline-reps", type=int, default=2)
    args = parser.parse_args()
    from fairmed.metrics import GAP_FORMS, audit

    df = make_predictions(args.rows)
    attrs = ["sex", "fst:each"]
    t0, c0 = time.perf_counter(), time.process_time()
    result = audit(df, attrs, bootstrap=args.reps, permutations=0, workers=args.workers, min_group_size=0)
    t_fm, cpu_fm = time.perf_counter() - t0, time.process_time() - c0
    frame = result.to_frame()
    t_base = naive_replicates(df, ["sex", "fst"], args.baseline_reps) * args.reps / args.baseline_reps
    groups = frame[~frame["group"].isin([*GAP_FORMS, "criterion"])]
    print(f"rows: {args.rows:,}  attributes: sex (2 groups), FST (6 groups), plus overall")
    print(f"replicates: {args.reps:,}  workers: {args.workers}  cores: {os.cpu_count()}")
    print(
        f"per-group metric rows with CIs: {len(groups)}; gap and criterion rows: {len(frame) - len(groups)}"
    )
    print(f"{'fairmed (vectorized)':<30}{t_fm:>10.1f} s   (target < 60 s; CPU time {cpu_fm:.1f} s)")
    print(f"{'load average (1 min)':<30}{os.getloadavg()[0]:>10.2f}     (other processes on the machine)")
    print(
        f"{'loop + scikit-learn (6 metrics)':<30}{t_base:>10.1f} s   (scaled from {args.baseline_reps} replicates)"
    )
    print(f"{'speed-up':<30}{t_base / t_fm:>10.1f} x")
    auc = frame[(frame["attribute"] == "fst") & (frame["metric"] == "auc")][
        ["group", "value", "ci_low", "ci_high"]
    ]
    print(auc.to_string(index=False))


if __name__ == "__main__":
    main()
