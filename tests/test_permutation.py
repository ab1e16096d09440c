"""Permutation p-values of gaps and criteria, signed two-group gaps, Wilson intervals, p_adjusted."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairmed.cli import main
from fairmed.metrics import audit, binary_metrics
from fairmed.metrics.criteria import binary_criteria
from fairmed.metrics.intervals import wilson_interval
from fairmed.metrics.permutation import SharedShuffles, Shuffler, log_arrangements

# 10 rows: group a (5) and b (5); 2 + 2 positives; distinct scores; decisions at 0.5
TINY = pd.DataFrame(
    {
        "y_true": [1, 1, 0, 0, 0, 1, 1, 0, 0, 0],
        "y_score": [0.9, 0.7, 0.6, 0.2, 0.1, 0.55, 0.3, 0.4, 0.35, 0.05],
        "g": ["a"] * 5 + ["b"] * 5,
    }
)


def _statistics(frame: pd.DataFrame, groups) -> dict[str, float]:
    """max - min over groups of a few metrics and two criteria, computed directly."""
    table = binary_metrics(frame["y_true"], frame["y_score"], groups)
    values = {c: table[c].to_numpy(dtype=float) for c in table.columns}
    out = {
        m: float(np.nanmax(values[m]) - np.nanmin(values[m]))
        for m in ("auc", "tpr", "fpr", "accuracy", "brier")
    }
    crit = binary_criteria(values)
    out["equalized_odds"] = float(crit["equalized_odds"])
    out["eodd"] = float(crit["eodd"])
    return out


def _enumerated_pvalues(frame: pd.DataFrame) -> dict[str, float]:
    """Exact p-values by brute force: every assignment of the group labels within label strata."""
    y = frame["y_true"].to_numpy()
    g = frame["g"].to_numpy()
    observed = _statistics(frame, g)
    strata = [np.flatnonzero(y == k) for k in (0, 1)]
    per_stratum = [set(itertools.permutations(g[idx])) for idx in strata]
    counts = dict.fromkeys(observed, 0)
    total = 0
    for labels in itertools.product(*per_stratum):
        shuffled = g.copy()
        for idx, lab in zip(strata, labels):
            shuffled[idx] = lab
        stats = _statistics(frame, shuffled)
        for k, v in stats.items():
            counts[k] += v >= observed[k] - 1e-12
        total += 1
    return {k: c / total for k, c in counts.items()}


def _p(result, group, metric, column="p_value", attribute="g") -> float:
    f = result.to_frame()
    row = f[(f["attribute"] == attribute) & (f["group"] == group) & (f["metric"] == metric)]
    assert len(row) == 1
    return float(row[column].iloc[0])


def test_exact_pvalues_equal_full_enumeration():
    # C(6, 3) * C(4, 2) = 120 distinct shuffles <= 1000: the audit enumerates them all
    result = audit(TINY, ["g"], bootstrap=0, permutations=1000, min_group_size=0)
    expected = _enumerated_pvalues(TINY)
    for metric in ("auc", "tpr", "fpr", "accuracy", "brier"):
        assert _p(result, "difference", metric) == pytest.approx(expected[metric], abs=1e-12), metric
    for name in ("equalized_odds", "eodd"):
        assert _p(result, "criterion", name) == pytest.approx(expected[name], abs=1e-12), name


def test_exact_pvalues_three_groups():
    frame = TINY.assign(g=["a", "a", "b", "c", "a", "b", "c", "c", "b", "a"])
    result = audit(frame, ["g"], bootstrap=0, permutations=100_000, min_group_size=0)
    expected = _enumerated_pvalues(frame)
    for metric in ("auc", "tpr", "accuracy"):
        assert _p(result, "difference", metric) == pytest.approx(expected[metric], abs=1e-12), metric


def test_random_shuffles_use_the_plus_one_rule():
    # 120 shuffles exist, 30 are drawn: p = (1 + #exceed) / 31
    result = audit(TINY, ["g"], bootstrap=0, permutations=30, min_group_size=0)
    for metric in ("auc", "tpr", "accuracy"):
        p = _p(result, "difference", metric)
        assert 1 / 31 <= p <= 1
        assert p * 31 == pytest.approx(round(p * 31))
    again = audit(TINY, ["g"], bootstrap=0, permutations=30, min_group_size=0)
    pd.testing.assert_frame_equal(result.to_frame(), again.to_frame())  # seeded


def test_shuffles_keep_each_groups_label_counts():
    codes = np.array([0, 0, 1, 1, 1, -1, 0, 1])
    other = np.array([2, 1, 0, 0, 1, 2, 2, 0])
    strata = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    shared = SharedShuffles([codes, other], strata)
    draws = shared.draw(50, np.random.default_rng(0))
    assert len(draws) == 2 and draws[0].shape == (50, 8)
    for c, d in zip((codes, other), draws):
        for s in (0, 1):
            for g in (-1, 0, 1, 2):  # every stratum keeps its count of each code
                assert ((d[:, strata == s] == g).sum(1) == ((c == g) & (strata == s)).sum()).all()
    # one permutation serves both groupings: the pairs (code, other) travel together
    pairs = {tuple(p) for p in np.stack([codes, other], 1)}
    assert all(tuple(p) in pairs for p in np.stack([draws[0], draws[1]], -1).reshape(-1, 2))
    shuffler = Shuffler(codes, strata, 2)
    # strata: {0,1,0 | -1 out} and {0,1,1,1}: 3 * 4 = 12 arrangements, all enumerated once
    assert np.exp(log_arrangements(shuffler.counts)) == pytest.approx(12)
    assert len({tuple(r) for r in shuffler.enumerate()}) == 12
    assert (shuffler.enumerate()[:, 5] == -1).all()  # a row in no group stays out


def test_clear_gap_is_detected_and_null_is_not():
    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 2, n)
    g = np.repeat(["a", "b"], n // 2)
    noise = rng.normal(0, 1, n)
    score_null = 1 / (1 + np.exp(-(1.5 * y - 0.75 + noise)))
    score_gap = 1 / (1 + np.exp(-(np.where(g == "a", 3.0, 0.5) * (y - 0.5) + noise)))
    frame = pd.DataFrame({"y_true": y, "g": g, "y_score": score_gap})
    gap = audit(frame, ["g"], bootstrap=0, permutations=200)
    assert _p(gap, "difference", "auc") == pytest.approx(1 / 201)
    null = audit(frame.assign(y_score=score_null), ["g"], bootstrap=0, permutations=200)
    assert _p(null, "difference", "auc") > 0.05


def test_untested_rows_have_nan_and_aliases_share_one_test():
    result = audit(TINY, ["g"], bootstrap=0, permutations=50, min_group_size=0, adjust="holm")
    f = result.to_frame()
    assert f.loc[f["group"].isin(["a", "b", "overall", "ratio", "signed", "std"]), "p_value"].isna().all()
    assert np.isnan(_p(result, "difference", "prevalence"))  # fixed by the label strata
    assert np.isnan(_p(result, "criterion", "eopp1_signed"))
    assert _p(result, "difference", "fnr") == _p(result, "difference", "tpr")
    assert _p(result, "criterion", "equal_opportunity") == _p(result, "difference", "tpr")
    # Holm over the distinct tests only: the largest adjusted value is min(1, m * p_min)-like
    tested = f[f["p_value"].notna()]
    distinct = tested.drop_duplicates(["value", "p_value"])
    assert (tested["p_adjusted"] >= tested["p_value"]).all()
    p_min = tested["p_value"].min()
    assert tested["p_adjusted"].min() == pytest.approx(min(1.0, len(distinct) * p_min))


def test_values_engine_gets_pvalues():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"recon_mse": np.r_[rng.normal(1, 0.1, 80), rng.normal(1.3, 0.1, 80)]})
    frame["g"] = np.repeat(["a", "b"], 80)
    result = audit(frame, ["g"], values=["recon_mse"], bootstrap=0, permutations=99)
    assert _p(result, "difference", "recon_mse_mean") == pytest.approx(0.01)
    assert _p(result, "signed", "recon_mse_mean", column="value") < -0.2


def test_signed_two_group_rows():
    result = audit(TINY, ["g"], bootstrap=200, permutations=0, min_group_size=0)
    table = binary_metrics(TINY["y_true"], TINY["y_score"], TINY["g"])
    for metric in ("tpr", "fpr", "auc", "accuracy"):
        expected = table.loc["a", metric] - table.loc["b", metric]
        assert _p(result, "signed", metric, column="value") == pytest.approx(expected)
        lo, hi = _p(result, "signed", metric, "ci_low"), _p(result, "signed", metric, "ci_high")
        assert lo <= hi
    # tpr: a has 2/2, b 1/2 -> +0.5; the signed interval can go below 0, the max-min one cannot
    assert _p(result, "signed", "tpr", column="value") == pytest.approx(0.5)
    three = audit(TINY.assign(g=list("aabbbcccaa")), ["g"], bootstrap=0, permutations=0, min_group_size=0)
    assert "signed" not in set(three.to_frame()["group"])


def test_wilson_by_hand():
    z = 1.959963984540054
    # k = 0: upper end z^2 / (n + z^2)
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and hi == pytest.approx(z * z / (50 + z * z))
    # k = 5, n = 20: centre (0.25 + z^2/40) / (1 + z^2/20), half z/(1 + z^2/20) sqrt(0.25*0.75/20 + z^2/1600)
    den = 1 + z * z / 20
    centre = (0.25 + z * z / 40) / den
    half = z / den * np.sqrt(0.25 * 0.75 / 20 + z * z / 1600)
    lo, hi = wilson_interval(5, 20)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.1119, 0.4687)
    lo, hi = wilson_interval(20, 20)  # symmetric to k = 0
    assert hi == 1.0 and lo == pytest.approx(1 - z * z / (20 + z * z))
    assert np.isnan(wilson_interval(0, 0)[0])


def test_rates_at_zero_get_honest_intervals():
    # group b has no false positive: FPR 0 with a Wilson interval that is not [0, 0]
    frame = pd.DataFrame({"y_true": [0] * 50 + [1] * 10 + [0] * 50 + [1] * 10, "g": ["a"] * 60 + ["b"] * 60})
    frame["y_score"] = np.r_[np.tile([0.9, 0.1], 25), [0.9] * 10, [0.1] * 50, [0.9] * 10]
    result = audit(frame, ["g"], bootstrap=50, permutations=0)
    f = result.to_frame().set_index(["group", "metric"])
    assert f.loc[("b", "fpr"), "value"] == 0.0
    assert f.loc[("b", "fpr"), "ci_low"] == 0.0
    assert f.loc[("b", "fpr"), "ci_high"] == pytest.approx(wilson_interval(0, 50)[1])
    assert f.loc[("b", "tpr"), "ci_low"] == pytest.approx(wilson_interval(10, 10)[0])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from(["holm", "bh", "none"]))
def test_adjusted_never_below_raw_in_audits(seed, adjust):
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame(
        {
            "seed": rng.integers(0, 2, n),
            "y_true": np.r_[[0, 1, 0, 1], rng.integers(0, 2, n - 4)],
            "y_score": rng.random(n),
            "g": rng.choice(["u", "v", "w"], n),
            "h": rng.choice(["x", "y"], n),
        }
    )
    f = audit(frame, ["g", "h"], bootstrap=0, permutations=40, adjust=adjust, min_group_size=0).to_frame()
    tested = f[f["p_value"].notna()]
    assert len(tested) > 0
    assert (tested["p_adjusted"] >= tested["p_value"] - 1e-15).all()
    assert (tested["p_adjusted"] <= 1).all()
    assert f.loc[f["p_value"].isna(), "p_adjusted"].isna().all()


def test_cli_permutations_zero_gives_no_pvalues(tmp_path):
    path = tmp_path / "p.csv"
    TINY.to_csv(path, index=False)
    out = tmp_path / "r.csv"
    main(["audit", str(path), "--attr", "g", "--bootstrap", "0", "--permutations", "0", "--out", str(out)])
    results = pd.read_csv(out)
    assert {"p_value", "p_adjusted"} <= set(results.columns)
    assert results["p_value"].isna().all() and results["p_adjusted"].isna().all()
    main(["audit", str(path), "--attr", "g", "--bootstrap", "0", "--permutations", "50", "--adjust", "bh", "--out", str(out)])  # fmt: skip
    assert pd.read_csv(out)["p_value"].notna().any()


def test_spec_audit_settings():
    from fairmed.studies.spec import AuditSettings

    settings_ = AuditSettings()
    assert (settings_.permutations, settings_.adjust) == (1000, "holm")
    assert AuditSettings(permutations=0, adjust="bh").adjust == "bh"
    with pytest.raises(ValueError):
        AuditSettings(adjust="bonferroni")


def test_membership_sums_equal_weighted_sums():
    from fairmed.metrics.groups import layout_binary, membership_sums, weighted_sums

    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n), 1)  # ties
    layout = layout_binary(y, (s >= 0.5).astype(int), np.zeros(n, dtype=int), ["all"], s)
    for n_groups, low in ((2, 0), (3, 0), (3, -1)):  # -1: rows in no group (no complement)
        codes = rng.integers(low, n_groups, (5, n))
        sums, auc_num = membership_sums(layout, codes, n_groups)
        for g in range(n_groups):
            ref_sums, ref_auc = weighted_sums(layout, (codes == g).astype(np.float32))
            np.testing.assert_allclose(sums[:, g], ref_sums[:, 0], rtol=1e-5, atol=1e-4)
            np.testing.assert_array_equal(auc_num[:, g], ref_auc[:, 0])


def test_values_exact_pvalue_by_enumeration():
    # interleaved groups: membership must follow the rows, not each column's sorted order
    v = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.05, 0.4])
    w = np.array([5.0, 1.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0])
    g = np.array(["a", "b", "a", "b", "a", "b", "b", "a"])
    frame = pd.DataFrame({"recon_mse": v, "latent_std": w, "g": g})
    result = audit(
        frame, ["g"], values=["recon_mse", "latent_std"], bootstrap=0, permutations=1000, min_group_size=0
    )
    for column, x in (("recon_mse", v), ("latent_std", w)):
        observed = abs(x[g == "a"].mean() - x[g == "b"].mean())
        stats = [
            abs(x[list(c)].mean() - np.delete(x, list(c)).mean()) for c in itertools.combinations(range(8), 4)
        ]
        expected = np.mean(np.array(stats) >= observed - 1e-12)
        assert _p(result, "difference", f"{column}_mean") == pytest.approx(expected), column
