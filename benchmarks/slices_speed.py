"""Speed of the slice search: depth 3 over 10 attributes of 1,000,000 rows (target: seconds).

Times ``find_slices`` end to end (attribute encoding, the search on the discovery half, folding,
the held-out test) for a rate (FPR: counts only), a per-sample value (``recon_mse``: weighted sums)
and the AUC (score histograms), best of ``--repeat``; then the stages of the FPR search alone.
The table is simulated (fairmed.data.synth_predictions) with a planted FPR slice.

    .venv/bin/python benchmarks/slices_speed.py [--rows 1000000] [--attrs 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fairmed.data.synth_predictions import planted_slice_predictions
from fairmed.metrics.slice_stats import make_statistic
from fairmed.metrics.slices import encode_attributes, find_slices, fold_redundant, search


def best_of(fn, repeat: int):
    """(best wall seconds, best CPU seconds of the process, the result): the machine may be shared."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--attrs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = planted_slice_predictions(args.rows, n_attrs=args.attrs, seed=0)
    rng = np.random.default_rng(1)
    table["recon_mse"] = rng.gamma(2.0, 0.01, len(table)) * np.where(table["planted"], 1.5, 1.0)
    attrs = [c for c in table.columns if c not in ("y_true", "y_score", "planted", "recon_mse")]
    print(f"{args.rows} rows, {len(attrs)} attributes ({', '.join(attrs)}), depth 3, best of {args.repeat}")
    for metric in ("fpr", "recon_mse", "auc"):
        t, cpu, result = best_of(lambda m=metric: find_slices(table, attrs, m), args.repeat)
        o = result.options
        first = result.slices["slice"].iloc[0] if len(result.slices) else "-"
        print(
            f"  find_slices {metric:>9}: {t:6.2f} s wall, {cpu:6.2f} s CPU ({result.n_tested} slices in {o['attribute_sets']} "
            f"attribute sets, {o['attribute_sets_pruned']} pruned; first: {first})"
        )
    t_enc, _, attributes = best_of(lambda: encode_attributes(table, attrs), args.repeat)
    stat = make_statistic(table, "fpr")
    idx = np.arange(0, len(table), 2)
    t_search, _, found = best_of(lambda: search(attributes, stat, idx, depth=3), args.repeat)
    t_fold, _, _ = best_of(lambda: fold_redundant(found, stat, 10, 1.96), args.repeat)
    print(
        f"  stages (fpr, wall): encode {t_enc:.2f} s, search on {len(idx)} rows {t_search:.2f} s, "
        f"fold {t_fold:.3f} s"
    )


if __name__ == "__main__":
    main()
