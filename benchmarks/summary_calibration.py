"""False alarms and power of the terminal summary's "narrowed" / "widened" (fairmed.studies.summary).

The summary says a mitigation narrowed or widened the baseline's largest gap only when the exact
Wilcoxon signed-rank test of the per-seed gaps, paired by seed and Holm-adjusted over the
mitigations, gives p <= 0.05. Here the truth is known: Results rows are simulated for a baseline
and three mitigations over S seeds, each seed's TPR gap = true gap + a seed effect shared by every
method of that seed (sd 0.03) + the method's own noise (sd 0.03). Under the null every method has
the baseline's gap (0.30); under the alternative one mitigation's true gap is lower by ``d``.

    python benchmarks/summary_calibration.py [--sims 2000]

Prints, per seeds and d: the share of simulations in which any mitigation was called narrowed or
widened (d = 0: the family-wise false-alarm rate) and the share in which the shifted one was called
narrowed (power). The seed is the unit of replication.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from fairmed.studies.summary import summary_lines

METHODS = ("erm", "reweight", "groupdro", "adversarial")
GAP, SEED_SD, NOISE_SD = 0.30, 0.03, 0.03


def results(rng: np.random.Generator, seeds: int, d: float) -> pd.DataFrame:
    rows = []
    for seed in range(seeds):
        shared = rng.normal(0.0, SEED_SD)
        for method in METHODS:
            gap = GAP - (d if method == "reweight" else 0.0) + shared + rng.normal(0.0, NOISE_SD)
            for group, value in (("FST 1-2", 0.9), ("FST 5-6", 0.9 - gap), ("difference", gap)):
                rows.append((method, seed, "fst", group, "tpr", value))
            rows.append((method, seed, "overall", "overall", "accuracy", 0.9))
    frame = pd.DataFrame(rows, columns=["method", "seed", "attribute", "group", "metric", "value"])
    return frame.assign(split="test", ci_low=frame["value"], ci_high=frame["value"])


def rates(sims: int, seeds: int, d: float, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    any_claim = shifted = 0
    for _ in range(sims):
        verdict = summary_lines(results(rng, seeds, d))[-len(METHODS) + 1 :]
        claims = [line for line in verdict if "narrowed to" in line or "widened to" in line]
        any_claim += bool(claims)
        shifted += any(line.startswith("  reweight: narrowed to") for line in verdict)
    return any_claim / sims, shifted / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.sims} simulations per row; gap 0.30, seed sd {SEED_SD}, method noise sd {NOISE_SD}")
    print("| seeds | true narrowing d | any claim (d = 0: false alarms) | reweight called narrowed |")
    print("|---|---|---|---|")
    for seeds in (3, 5, 7, 10):
        for d in (0.0, 0.03, 0.06):
            any_claim, power = rates(args.sims, seeds, d)
            print(f"| {seeds} | {d:.2f} | {any_claim:.3f} | {power:.3f} |")


if __name__ == "__main__":
    main()
