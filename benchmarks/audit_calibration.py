"""Calibration of the audit's inference on simulated scores with known truth (no training).

Two groups a and b, prevalence 0.3 in both, score = sigmoid(1.2 (2y - 1) + N(0, 1)); in group b
the positives' logit is lowered by ``delta`` (a TPR and AUC gap against b; delta = 0: no gap).
The unit of replication is the simulated data set (one audit each, one run).

1. Null (delta = 0), ``--null`` data sets of ``--n`` rows per group: the share of p_value <= 0.05
   per tested row (should be near 0.05, within about 2 binomial SE), the family-wise error of
   p_adjusted (Holm; share of data sets with any p_adjusted <= 0.05: at most 0.05), and the
   coverage of the signed two-group intervals of 0 (near 0.95).
2. Coverage under a gap (delta = 0.5): the signed intervals' coverage of the true difference
   (computed from 2,000,000 rows per group).
3. Power: share of p_value <= 0.05 for the TPR and AUC gaps against the true TPR gap, for
   several group sizes (``--power-reps`` data sets per cell); a table and a figure.

    .venv/bin/python benchmarks/audit_calibration.py [--null 500] [--power-reps 100] [--figure docs/audit_calibration.png]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from fairmed.metrics import audit
from fairmed.metrics.multiplicity import adjust_pvalues

NULL_METRICS = ("auc", "tpr", "fpr", "accuracy", "ppv", "selection_rate", "brier", "ece")
CRITERIA = ("equalized_odds", "eodd")
SIGNED = ("auc", "tpr", "fpr", "accuracy", "ppv", "brier")
SIZES = (100, 250, 1000)
DELTAS = (0.0, 0.25, 0.5, 1.0)


def simulate(rng: np.random.Generator, n: int, delta: float, prevalence: float = 0.3) -> pd.DataFrame:
    """``n`` rows per group; group b's positives score lower by ``delta`` on the logit scale."""
    g = np.repeat(np.array(["a", "b"]), n)
    y = (rng.random(2 * n) < prevalence).astype(np.int64)
    logit = 1.2 * (2 * y - 1) + rng.normal(0, 1, 2 * n) - delta * ((g == "b") & (y == 1))
    return pd.DataFrame({"y_true": y, "y_score": 1 / (1 + np.exp(-logit)), "g": g})


def truth(delta: float, n: int = 2_000_000) -> dict[str, float]:
    """The true signed differences a - b (a very large sample)."""
    from fairmed.metrics import binary_metrics

    frame = simulate(np.random.default_rng(12345), n, delta)
    table = binary_metrics(frame["y_true"], frame["y_score"], frame["g"])
    return {m: float(table.loc["a", m] - table.loc["b", m]) for m in SIGNED}


def one_audit(frame: pd.DataFrame, bootstrap: int, permutations: int, seed: int) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = audit(frame, ["g"], bootstrap=bootstrap, permutations=permutations, seed=seed)
    f = res.to_frame()
    return f[f["attribute"] == "g"]


def null_study(reps: int, n: int, bootstrap: int, permutations: int) -> dict[str, pd.Series | float]:
    rng = np.random.default_rng(0)
    rejected, covered, fwer, fwer_bh = [], [], 0, 0
    for i in range(reps):
        f = one_audit(simulate(rng, n, 0.0), bootstrap, permutations, seed=i)
        diff = f[(f["group"] == "difference") & f["metric"].isin(NULL_METRICS)].set_index("metric")
        crit = f[(f["group"] == "criterion") & f["metric"].isin(CRITERIA)].set_index("metric")
        rejected.append(pd.concat([diff["p_value"], crit["p_value"]]) <= 0.05)
        tested = f[f["p_value"].notna()]
        fwer += bool((tested["p_adjusted"] <= 0.05).any())
        fwer_bh += bool((adjust_pvalues(tested.drop_duplicates("p_value")["p_value"], "bh") <= 0.05).any())
        signed = f[(f["group"] == "signed") & f["metric"].isin(SIGNED)].set_index("metric")
        covered.append((signed["ci_low"] <= 0) & (signed["ci_high"] >= 0))
    return {
        "rejection": pd.DataFrame(rejected).mean(),
        "coverage": pd.DataFrame(covered).mean(),
        "fwer": fwer / reps,
        "fwer_bh": fwer_bh / reps,
    }


def coverage_under_gap(reps: int, n: int, delta: float, bootstrap: int) -> pd.Series:
    true = truth(delta)
    rng = np.random.default_rng(1)
    covered = []
    for i in range(reps):
        f = one_audit(simulate(rng, n, delta), bootstrap, 0, seed=i)
        signed = f[(f["group"] == "signed") & f["metric"].isin(SIGNED)].set_index("metric")
        t = pd.Series(true)[signed.index]
        covered.append((signed["ci_low"] <= t) & (t <= signed["ci_high"]))
    return pd.DataFrame(covered).mean()


def power_study(reps: int, permutations: int) -> pd.DataFrame:
    rows = []
    for delta in DELTAS:
        true = truth(delta)
        for n in SIZES:
            rng = np.random.default_rng(int(1000 * delta) + n)
            hits = {"tpr": 0, "auc": 0}
            for i in range(reps):
                f = one_audit(simulate(rng, n, delta), 0, permutations, seed=i)
                diff = f[f["group"] == "difference"].set_index("metric")["p_value"]
                for m in hits:
                    hits[m] += bool(diff[m] <= 0.05)
            rows.append(
                {
                    "delta": delta,
                    "true_tpr_gap": true["tpr"],
                    "true_auc_gap": true["auc"],
                    "n_per_group": n,
                    "power_tpr": hits["tpr"] / reps,
                    "power_auc": hits["auc"] / reps,
                }
            )
    return pd.DataFrame(rows)


def figure(power: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, metric in zip(axes, ("tpr", "auc")):
        for n, sub in power.groupby("n_per_group"):
            ax.plot(sub[f"true_{metric}_gap"], sub[f"power_{metric}"], marker="o", label=f"n = {n} per group")
        ax.axhline(0.05, color="grey", lw=0.8, ls=":")
        ax.axhline(0.8, color="grey", lw=0.8, ls="--")
        ax.set_xlabel(f"true {metric.upper()} gap (a - b)")
        ax.set_title(f"permutation test of the {metric.upper()} gap")
    axes[0].set_ylabel("share of p_value <= 0.05")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def md(frame: pd.DataFrame) -> str:
    from fairmed.metrics.audit import md_table

    cells = [
        [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)
    ]
    return md_table([str(c) for c in frame.columns], cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", type=int, default=500, help="null data sets")
    parser.add_argument("--n", type=int, default=250, help="rows per group in the null and coverage studies")
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--permutations", type=int, default=500)
    parser.add_argument("--coverage-reps", type=int, default=200)
    parser.add_argument("--power-reps", type=int, default=100)
    parser.add_argument("--figure", default=None, help="write the power figure here (png)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    se = np.sqrt(0.05 * 0.95 / args.null)
    null = null_study(args.null, args.n, args.bootstrap, args.permutations)
    print(f"## null: {args.null} data sets, {args.n} rows per group, B = {args.permutations} shuffles")
    print(f"share of p_value <= 0.05 per row (nominal 0.05, binomial SE {se:.3f}):")
    print(md(null["rejection"].to_frame("share").T))
    print(f"family-wise error, any p_adjusted (Holm) <= 0.05: {null['fwer']:.3f}  (must be <= 0.05)")
    print(f"any BH-adjusted p <= 0.05 (= FWER under the global null): {null['fwer_bh']:.3f}")
    print(f"coverage of 0 by the signed {int(100 * 0.95)}% intervals (nominal 0.95, B = {args.bootstrap}):")
    print(md(null["coverage"].to_frame("coverage").T))
    gap = coverage_under_gap(args.coverage_reps, args.n, 0.5, args.bootstrap)
    print(f"\n## gap (delta = 0.5): coverage of the true signed difference, {args.coverage_reps} data sets")
    print(md(gap.to_frame("coverage").T))
    power = power_study(args.power_reps, min(args.permutations, 200))
    print(f"\n## power: share of p_value <= 0.05, {args.power_reps} data sets per cell")
    print(md(power))
    if args.figure:
        figure(power, args.figure)
        print(f"wrote {args.figure}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
