"""Mann-Whitney U against scipy, significance stars, the paired test and bootstrap helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from fairmed.metrics.stats import (
    compare_runs,
    compare_table,
    mann_whitney,
    paired_test,
    percentile_interval,
    resample_counts,
    stars,
)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
@pytest.mark.parametrize(
    ("n1", "n2", "rounding"),
    [(5, 5, None), (3, 8, None), (7, 20, None), (12, 15, None), (6, 6, 1), (30, 25, 1)],
)
def test_mann_whitney_matches_scipy(n1, n2, rounding, alternative):
    rng = np.random.default_rng(n1 * 100 + n2)
    a = rng.normal(0.3, 1, n1)
    b = rng.normal(0, 1, n2)
    if rounding is not None:  # ties -> asymptotic with tie correction
        a, b = np.round(a, rounding), np.round(b, rounding)
    u, p = mann_whitney(a, b, alternative=alternative)
    ref = sps.mannwhitneyu(a, b, alternative=alternative)
    assert u == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_exact_five_seeds():
    # five seeds each, complete separation: the exact two-sided p is 2 / C(10, 5)
    u, p = mann_whitney([0.81, 0.82, 0.83, 0.84, 0.85], [0.71, 0.72, 0.73, 0.74, 0.75])
    assert u == 25.0
    assert p == pytest.approx(2 / 252)


def test_stars_convention():
    assert stars(1e-5) == "****"
    assert stars(1e-4) == "****"
    assert stars(5e-4) == "***"
    assert stars(1e-3) == "***"
    assert stars(0.005) == "**"
    assert stars(0.05) == "*"
    assert stars(0.1) == "*"
    assert stars(0.2) == "ns"
    assert stars(float("nan")) == "ns"


def test_paired_test_aligns_seeds_and_matches_wilcoxon():
    a = pd.Series([0.80, 0.82, 0.79, 0.85, 0.81, 0.83], index=[0, 1, 2, 3, 4, 5])
    b = pd.Series([0.77, 0.78, 0.74, 0.83, 0.80, 0.76], index=[5, 4, 3, 2, 1, 0])[::-1]
    stat, p = paired_test(a, b)
    ref = sps.wilcoxon(a.to_numpy(), b.sort_index().to_numpy())
    assert stat == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue)
    assert paired_test([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)


def test_resample_counts_are_stratified_and_seeded():
    bounds = np.array([0, 7, 7, 30, 31])
    a = resample_counts(bounds, 50, np.random.default_rng(1))
    b = resample_counts(bounds, 50, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        np.testing.assert_array_equal(a[:, lo:hi].sum(1), hi - lo)
    assert a.min() >= 0 and a.mean() == pytest.approx(1.0)


def test_percentile_interval_and_nan_columns():
    reps = np.column_stack([np.arange(101, dtype=float), np.full(101, np.nan)])
    lo, hi = percentile_interval(reps, 0.9)
    assert lo[0] == pytest.approx(5.0) and hi[0] == pytest.approx(95.0)
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_compare_runs_over_seeds():
    rows = []
    for method, base in (("erm", 0.70), ("dro", 0.80)):
        for seed in range(5):
            rows.append(("sex", "female", method, seed, "auc", base + 0.01 * seed))
    results = pd.DataFrame(rows, columns=["attribute", "group", "method", "seed", "metric", "value"])
    table = compare_runs(results, "auc", by="method")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["method"] == "dro" and row["baseline"] == "erm"
    assert row["p"] == pytest.approx(2 / 252) and row["stars"] == "**"
    assert row["p_paired"] == pytest.approx(
        sps.wilcoxon([0.7 + 0.01 * s for s in range(5)], [0.8 + 0.01 * s for s in range(5)]).pvalue
    )


def test_bootstrap_spread_matches_binomial_standard_error():
    """Replicates of a group's accuracy spread like a binomial proportion: sd ~ sqrt(p(1-p)/n)."""
    from fairmed.metrics.audit import bootstrap_replicates
    from fairmed.metrics.groups import BinaryEngine

    rng = np.random.default_rng(5)
    n = 4000
    codes = np.repeat([0, 1], [n // 4, 3 * n // 4])
    y = rng.integers(0, 2, n)
    s = np.clip(0.2 * y + 0.8 * rng.random(n), 0, 1)
    engine = BinaryEngine(y, (s >= 0.5).astype(int), codes, ["small", "large"], s)
    reps, crit = bootstrap_replicates(engine, 600, np.random.SeedSequence(0))
    point, _ = engine.evaluate(np.ones((1, n)))
    for g, size in enumerate((n // 4, 3 * n // 4)):
        p = point["accuracy"][0, g]
        assert reps["accuracy"][:, g].std() == pytest.approx(np.sqrt(p * (1 - p) / size), rel=0.12)
        assert reps["n"][:, g].min() == reps["n"][:, g].max() == size  # stratified
    assert crit["accuracy_parity"].shape == (600,)


def test_resample_counts_do_not_depend_on_the_block_size(monkeypatch):
    """Large groups draw one replicate per call (cache-sized blocks); any blocking gives the same counts."""
    import fairmed.metrics.stats as stats_module

    bounds = np.array([0, 70_001, 70_004])
    shapes = []

    class Recording:
        def __init__(self, seed):
            self.rng = np.random.default_rng(seed)

        def integers(self, *args, size, **kwargs):
            shapes.append(size)
            return self.rng.integers(*args, size=size, **kwargs)

    default = resample_counts(bounds, 20, Recording(3))
    assert shapes == [(1, 70_001)] * 20 + [(20, 3)]
    shapes.clear()
    monkeypatch.setattr(stats_module, "_MIN_BLOCK", 8)
    blocked = resample_counts(bounds, 20, Recording(3))
    assert shapes == [(8, 70_001), (8, 70_001), (4, 70_001), (20, 3)]
    assert np.array_equal(default, blocked)
    assert (default[:, :70_001].sum(1) == 70_001).all() and (default[:, 70_001:].sum(1) == 3).all()


def test_compare_table_keeps_other_run_keys_apart():
    rows = []
    for split, shift in (("val", 0.0), ("test", 0.5)):
        for method, offset in (("erm", 0.0), ("fair", 0.1)):
            for seed in range(3):
                value = shift + offset + seed / 100
                rows.append((split, method, seed, "sex", "male", "auc", value))
                rows.append((split, method, seed, "overall", "overall", "n", 10.0))
    results = pd.DataFrame(rows, columns=["split", "method", "seed", "attribute", "group", "metric", "value"])
    table = compare_table(results, by="method", baseline="erm")
    assert list(table.columns[:3]) == ["split", "metric", "attribute"]
    assert list(table["split"]) == ["val", "test"] and set(table["metric"]) == {"auc"}
    # within a split: erm 0.00, 0.01, 0.02 vs fair 0.10, 0.11, 0.12: U = 0, exact p = 0.1
    assert (table["u"] == 0).all() and np.allclose(table["p"], 0.1)
    assert np.allclose(table["mean_a"], [0.01, 0.51]) and np.allclose(table["mean_b"], [0.11, 0.61])
    assert np.allclose(table["p_paired"], 0.25)


def test_exact_floors_of_the_seed_tests():
    from fairmed.metrics.stats import min_p_mann_whitney, min_p_wilcoxon, star_floor_note, unreachable_stars

    # 5 seeds: Wilcoxon's exact floor is 2 / 2^5, Mann-Whitney's 2 / C(10, 5)
    assert min_p_wilcoxon(5) == 0.0625
    assert paired_test([1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5) == (0.0, 0.0625)
    assert min_p_mann_whitney(5, 5) == pytest.approx(2 / 252)
    assert mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])[1] == pytest.approx(2 / 252)
    assert unreachable_stars(2 / 252) == ["****", "***"]
    assert unreachable_stars(0.0625) == ["****", "***", "**"]
    assert unreachable_stars(1e-5) == []
    note = star_floor_note(min_p_mann_whitney(5, 5), "Mann-Whitney U test", "5 seeds per group")
    assert note == (
        "With 5 seeds per group the smallest p-value the Mann-Whitney U test can give is 0.0079, "
        "so **** and *** cannot occur."
    )
    assert star_floor_note(1e-6, "test", "many seeds") == ""


def test_stouffer_by_hand():
    from fairmed.metrics.stats import stouffer

    z, p = stouffer([1.0, 2.0, 3.0, np.nan])  # 6 / sqrt 3 = 3.4641; 2 Phi(-3.4641) = 5.32e-4
    assert z == pytest.approx(6 / np.sqrt(3))
    assert p == pytest.approx(2 * sps.norm.sf(6 / np.sqrt(3)))
    assert stouffer([1.0, -1.0]) == (0.0, 1.0)
