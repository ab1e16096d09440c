"""False-alarm rate and power of the benchmark's rank tests at its sizes (Monte Carlo).

The benchmark ranks k methods over n configurations (cpu profile: n = 5, k = 12 now, about 22 once
every MEDFAIR method runs) with the Friedman test (Iman-Davenport F, and the chi-square form) and
Nemenyi's critical difference. Under H0 every method's value in a block is drawn from the same
distribution (independent normals); the false-alarm rate is the share of repeats with p <= alpha
(Friedman) or with any pair of methods more than one CD apart (Nemenyi, family-wise). Power: one
method better by ``shift`` standard deviations in every block (the others under H0): the share of
repeats where the Friedman test rejects, and where Nemenyi separates that method from the median one.

    .venv/bin/python benchmarks/rank_tests_error_rates.py [--repeats 2000] [--alpha 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np

from fairmed.metrics.ranks import critical_difference, friedman


def rates(n: int, k: int, shift: float, repeats: int, alpha: float, rng: np.random.Generator):
    """(Iman-Davenport rejection rate, chi-square rejection rate, Nemenyi rate) over ``repeats``."""
    cd = critical_difference(k, n, alpha)
    f_rej = chi_rej = nem = 0
    for _ in range(repeats):
        values = rng.normal(size=(n, k))
        values[:, 0] += shift
        test = friedman(values)
        f_rej += test.p <= alpha
        chi_rej += test.p_chi2 <= alpha
        r = test.average_ranks
        if shift == 0:
            nem += (r.max() - r.min()) > cd  # any pair apart: a family-wise false alarm
        else:
            nem += (np.median(r[1:]) - r[0]) > cd  # the better method told apart from a typical one
    return f_rej / repeats, chi_rej / repeats, nem / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"alpha {args.alpha}, {args.repeats} repeats; columns: Friedman (Iman-Davenport), Friedman (chi2), Nemenyi"
    )
    for n, k in ((5, 12), (5, 22), (10, 12), (2, 12)):
        h0 = rates(n, k, 0.0, args.repeats, args.alpha, rng)
        print(f"n={n:2d} k={k:2d} H0 false alarm: {h0[0]:.3f} {h0[1]:.3f} {h0[2]:.3f}")
        for shift in (1.0, 2.0):
            pw = rates(n, k, shift, args.repeats, args.alpha, rng)
            print(f"n={n:2d} k={k:2d} one method +{shift:.0f} sd, power: {pw[0]:.3f} {pw[1]:.3f} {pw[2]:.3f}")


if __name__ == "__main__":
    main()
