"""Female vs male AUC over seeds: false alarms and power of the sex-ratio study's two tests.

Per seed, a model's test AUC for each sex is drawn around its true value: independent test sets per
seed (``n`` images per sex, half positive), binormal scores (AUC = Phi(delta / sqrt 2)), a seed effect
shared by both sexes (sd 0.02, the model's luck) and optionally a sex x seed interaction (sd ``tau``:
the model's luck differs between the sexes). Tests at alpha 0.05, two-sided:

- Mann-Whitney U over the seeds' AUCs (the paper's test; floor 2 / C(2k, k));
- DeLong per seed on the test images, signed z combined by Stouffer (``compare_groups(delong=)``).

    PYTHONPATH=src python benchmarks/sex_ratio_tests.py
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy import special

from fairmed.metrics.delong import delong_test
from fairmed.metrics.stats import mann_whitney, stouffer

SIMS = 1000


def _scores(rng, n: int, auc: float):
    y = np.r_[np.ones(n // 2), np.zeros(n - n // 2)]
    return y, rng.normal(math.sqrt(2) * special.ndtri(min(max(auc, 0.501), 0.999)) * y, 1.0)


def rates(gap: float, seeds: int, n: int, tau: float, rng) -> tuple[float, float]:
    mw_hits = st_hits = 0
    for _ in range(SIMS):
        female, male, zs = [], [], []
        for _ in range(seeds):
            luck = rng.normal(0, 0.02)
            a_f = 0.80 - gap / 2 + luck + rng.normal(0, tau)
            a_m = 0.80 + gap / 2 + luck + rng.normal(0, tau)
            res = delong_test(*_scores(rng, n, a_f), *_scores(rng, n, a_m))
            female.append(res.auc_a)
            male.append(res.auc_b)
            zs.append(res.z)
        mw_hits += mann_whitney(female, male)[1] <= 0.05
        st_hits += stouffer(zs)[1] <= 0.05
    return mw_hits / SIMS, st_hits / SIMS


def main() -> None:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    print(f"{SIMS} simulations per row; alpha 0.05; AUC 0.80 on average")
    print(
        "| seeds | images per sex | sex x seed sd | true gap | Mann-Whitney over seeds | DeLong per seed + Stouffer |"
    )
    print("|---|---|---|---|---|---|")
    for seeds, n, tau, gap in [
        (5, 200, 0.0, 0.0),
        (5, 200, 0.0, 0.03),
        (5, 200, 0.0, 0.06),
        (5, 500, 0.0, 0.03),
        (5, 200, 0.02, 0.0),
        (5, 200, 0.02, 0.06),
    ]:
        mw, st = rates(gap, seeds, n, tau, rng)
        print(f"| {seeds} | {n} | {tau:g} | {gap:g} | {mw:.3f} | {st:.3f} |")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
