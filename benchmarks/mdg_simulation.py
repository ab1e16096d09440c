"""The minimum detectable gap (fairmed.metrics.power) against simulation: at the MDG, how often does
the test the audit's gap rows approximate (two-sided, alpha 0.05) reject? The target is 0.80.

Proportions (TPR, FPR, accuracy): binomial counts on each group's denominator, pooled two-proportion
z test, 20,000 simulations (MC error ~0.003). AUC: binormal scores (AUC = Phi(delta / sqrt 2)),
DeLong's test, 1,000 simulations (MC error ~0.013). Both orientations (the smaller group worse or
better off); the MDG is defined by the harder one, so ``min`` should be ~0.80.

    PYTHONPATH=src python benchmarks/mdg_simulation.py
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import special

from fairmed.metrics import power as pw
from fairmed.metrics.delong import delong_test

CASES = [  # metric, (n large, n small), prevalence, value
    ("tpr", (400, 120), 0.3, 0.8),
    ("tpr", (1000, 40), 0.5, 0.7),
    ("fpr", (400, 120), 0.3, 0.1),
    ("accuracy", (2000, 300), 0.3, 0.85),
    ("accuracy", (60, 30), 0.5, 0.5),
    ("auc", (200, 100), 0.5, 0.8),
    ("auc", (600, 150), 0.3, 0.85),
]


def _proportion_power(metric, n, prev, lo, hi, rng, sims=20_000) -> float:
    m = [{"tpr": k * prev, "fpr": k * (1 - prev), "accuracy": k}[metric] for k in n]
    m = [int(round(x)) for x in m]
    x1, x2 = rng.binomial(m[0], lo, sims), rng.binomial(m[1], hi, sims)
    pooled = (x1 + x2) / (m[0] + m[1])
    se = np.sqrt(pooled * (1 - pooled) * (1 / m[0] + 1 / m[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.nan_to_num(np.abs(x1 / m[0] - x2 / m[1]) / se)
    return float((z > special.ndtri(0.975)).mean())


def _auc_power(n, prev, a_large, a_small, rng, sims=1_000) -> float:
    hits = 0
    for _ in range(sims):
        groups = []
        for k, auc in zip(n, (a_large, a_small)):
            pos = int(round(k * prev))
            y = np.r_[np.ones(pos), np.zeros(k - pos)]
            groups += [y, rng.normal(math.sqrt(2) * special.ndtri(auc) * y, 1.0)]
        hits += delong_test(*groups).p_value <= 0.05
    return hits / sims


def main() -> None:
    rng = np.random.default_rng(0)
    print(
        "| metric | n (large, small) | prevalence | value | MDG | power, small group worse | power, small group better |"
    )
    print("|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for metric, n, prev, value in CASES:
        d = pw.minimum_detectable_gap(metric, n, prev, value)
        lo, hi = value - d / 2, value + d / 2
        if metric == "auc":
            worse, better = _auc_power(n, prev, hi, lo, rng), _auc_power(n, prev, lo, hi, rng)
        else:
            higher_bad = metric == "fpr"
            small_worse = (lo, hi) if higher_bad else (hi, lo)
            worse = _proportion_power(metric, n, prev, *small_worse, rng)
            better = _proportion_power(metric, n, prev, *small_worse[::-1], rng)
        print(f"| {metric} | {n[0]}, {n[1]} | {prev:g} | {value:g} | {d:.3f} | {worse:.3f} | {better:.3f} |")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
