"""Slice search: exact statistics on a hand-made table, redundancy folding, the held-out test,
a planted failing slice, the false-alarm rate on null data, and clear errors."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmed.data.synth_predictions import planted_slice_predictions
from fairmed.errors import InputError, SpecError
from fairmed.metrics.delong import auc_variance
from fairmed.metrics.slice_stats import make_statistic
from fairmed.metrics.slices import (
    encode_attributes,
    find_slices,
    fold_redundant,
    quartile_edges,
    search,
    slice_name,
    split_halves,
)


def _tiny() -> pd.DataFrame:
    """8 negatives: decisions 1 1 0 0 (female: A A B B) and 1 0 0 0 (male: A A B B)."""
    return pd.DataFrame(
        {
            "y_true": [0] * 8,
            "y_pred": [1, 1, 0, 0, 1, 0, 0, 0],
            "sex": ["f", "f", "f", "f", "m", "m", "m", "m"],
            "site": ["A", "A", "B", "B", "A", "A", "B", "B"],
        }
    )


def _search_tiny():
    table = _tiny()
    attributes = encode_attributes(table, ["sex", "site"])
    stat = make_statistic(table, "fpr", pred="y_pred")
    found = search(attributes, stat, np.arange(8), depth=2, min_support=1, min_positives=0, min_metric_rows=1)
    names = [
        slice_name(attributes, a, v) for a, v in zip(found.candidates["attrs"], found.candidates["values"])
    ]
    return attributes, stat, found, found.candidates.assign(slice=names).set_index("slice")


def test_search_exact_on_a_hand_made_table():
    # mean FPR 3/8, population sd sqrt(15)/8; z = (mean_slice - mean_rest) / (sd sqrt(1/m + 1/(8-m)))
    _, _, _, c = _search_tiny()
    assert c.loc["sex=f", "effect"] == pytest.approx(0.25)  # 2/4 - 1/4
    assert c.loc["sex=f", "z"] == pytest.approx(np.sqrt(8 / 15))
    assert c.loc["site=A", "effect"] == pytest.approx(0.75)  # 3/4 - 0/4
    assert c.loc["site=A", "z"] == pytest.approx(np.sqrt(4.8))
    assert c.loc["sex=f & site=A", "effect"] == pytest.approx(5 / 6)  # 2/2 - 1/6
    assert c.loc["sex=f & site=A", "z"] == pytest.approx(20 / 3 / np.sqrt(10))
    assert c.loc["sex=m & site=A", "z"] == pytest.approx(4 / 3 / np.sqrt(10))
    assert c.loc["sex=m & site=B", "support"] == 2
    assert len(c) == 8  # 2 + 2 values, 4 pairs


def test_fold_redundant_by_hand():
    _, stat, found, _ = _search_tiny()
    attributes = encode_attributes(_tiny(), ["sex", "site"])

    def names(rows):
        return [slice_name(attributes, a, v) for a, v in zip(rows["attrs"], rows["values"])]

    # f & A within site=A: 1 vs 1/2 -> z = 0.5 / (sd * 1) = 1.033 < 1.96: folded into site=A;
    # sex=f without site=A's rows (f & B: 0) is not worse than males: explained by site=A
    assert names(fold_redundant(found, stat, top=5, fold_z=1.96)) == ["site=A"]
    # at fold_z=1: f & A survives both parents (1.033 and 2.066) but has no rows outside site=A
    assert names(fold_redundant(found, stat, top=5, fold_z=1.0)) == ["site=A"]
    # no threshold: still, a slice inside a kept one (f & A, m & A) adds no rows of its own
    assert names(fold_redundant(found, stat, top=5, fold_z=-10)) == ["site=A", "sex=f"]


def test_held_out_test_by_hand():
    table = _tiny()
    stat = make_statistic(table, "fpr", pred="y_pred")
    member = (table["sex"] == "f").to_numpy()
    out = stat.test(member, np.arange(8), ci=0.95)
    q = 1.959963984540054
    se = np.sqrt((1 / 3) / 4 + (1 / 4) / 4)  # sample variances of 1100 and 1000
    assert out["value"] == 0.5 and out["rest_value"] == 0.25 and out["effect"] == 0.25
    assert out["ci_low"] == pytest.approx(0.25 - q * se)
    assert out["ci_high"] == pytest.approx(0.25 + q * se)
    assert out["z"] == pytest.approx(np.sqrt(8 / 15))
    # Fisher: 2 of the 3 false positives among the 4 female rows of 8, P(X >= 2) = (3*10 + 1*5) / 70
    assert out["p"] == pytest.approx(0.5)
    # Wilson interval of 2/4
    centre, half = (0.5 + q**2 / 8) / (1 + q**2 / 4), q * np.sqrt(1 / 16 + q**2 / 64) / (1 + q**2 / 4)
    assert out["value_ci_low"] == pytest.approx(centre - half)
    assert out["value_ci_high"] == pytest.approx(centre + half)


def test_delong_matches_sklearn_and_placements():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60) + 0.3 * y, 1)  # ties
    auc, var = auc_variance(y, s)
    assert auc == pytest.approx(roc_auc_score(y, s))
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    assert var == pytest.approx(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_cube_statistics_match_groupby(seed):
    rng = np.random.default_rng(seed)
    n = 300
    table = pd.DataFrame(
        {
            "y_true": rng.integers(0, 2, n),
            "recon_mse": rng.gamma(2.0, 1.0, n),
            "a": rng.choice(["x", "y", None], n),
            "b": rng.integers(0, 3, n),
        }
    )
    attributes = encode_attributes(table, ["a", "b"])
    stat = make_statistic(table, "recon_mse")
    found = search(attributes, stat, np.arange(n), depth=2, min_support=1, min_positives=0, min_metric_rows=2)
    c = found.candidates
    a_names = table["a"].fillna("missing").astype(str)
    for row in c.itertuples():
        if row.attrs != (0, 1):
            continue
        member = (a_names == attributes[0].levels[row.values[0]]) & (
            table["b"].astype(str) == attributes[1].levels[row.values[1]]
        )
        v = table["recon_mse"]
        assert row.support == member.sum()
        assert row.effect == pytest.approx(v[member].mean() - v[~member].mean())


def test_planted_slice_comes_first():
    table = planted_slice_predictions(50_000, n_attrs=6, seed=0)
    result = find_slices(table, ["sex", "age", "fst", "site", "view", "a6"], "fpr", seed=0)
    first = result.slices.iloc[0]
    assert first["slice"] == "sex=female & site=D & view=lateral"
    assert first["p_adjusted"] < 1e-3 and first["significant"]
    assert first["ci_low"] > 0  # FPR 0.2 vs 0.1 on the held-out half
    frame = result.to_frame()
    assert {"fpr", "fpr_vs_rest"} == set(frame["metric"])
    assert (frame["n_tested"] == result.n_tested).all() and result.n_tested > 1000


def test_null_data_false_alarms_near_nominal():
    # 40 null tables: each is a family-wise false alarm when any tested slice is significant;
    # at the nominal 5% the count exceeds 6 of 40 with probability 0.003 (binomial)
    alarms = 0
    for seed in range(40):
        table = planted_slice_predictions(3000, n_attrs=5, fpr_factor=1.0, seed=seed)
        result = find_slices(table, ["sex", "fst", "site", "view"], "fpr", depth=2, top=5, seed=seed)
        alarms += bool(result.slices["significant"].any())
    assert alarms <= 6


def test_patients_stay_in_one_half():
    table = pd.DataFrame({"patient_id": np.repeat(np.arange(50), 4)})
    half = split_halves(table, "patient_id", 0.5, seed=3)
    assert half.sum() == 100
    assert (pd.Series(half).groupby(table["patient_id"]).nunique() == 1).all()


def test_numbers_cut_at_quartiles_missing_kept():
    table = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70, 80, 25, 35, 45, 55, 65, 75, np.nan]})
    assert quartile_edges(table["age"].to_numpy(dtype=float)) == [
        35.0,
        50.0,
        65.0,
    ]  # numpy linear quartiles of 20, 25, .., 80
    (age,) = encode_attributes(table, ["age"])
    assert age.levels == ["<35", "35-50", "50-65", ">=65", "missing"]
    assert age.codes[-1] == 4 and age.codes[0] == 0


def test_clear_errors():
    table = planted_slice_predictions(500, seed=0)
    with pytest.raises(SpecError, match="ece cannot be searched"):
        find_slices(table, ["sex"], "ece")
    with pytest.raises(SpecError, match="is an intersection"):
        find_slices(table, ["sex*site"], "fpr")
    with pytest.raises(SpecError, match="expected one of tpr"):
        find_slices(table, ["sex"], "nope")
    with pytest.raises(SpecError, match="'id' has 500 values"):
        find_slices(table.assign(id=[f"x{i}" for i in range(500)]), ["id"], "fpr")
    with pytest.raises(InputError, match="column 'site' not found"):
        find_slices(table.drop(columns="site"), ["site"], "fpr")


def test_auc_search_close_to_exact_and_test_is_delong():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    n = 4000
    y = rng.integers(0, 2, n)
    site = rng.choice(["A", "B", "C"], n)
    noise = np.where(site == "C", 2.0, 0.7)  # site C ranks worse
    score = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, noise))))
    table = pd.DataFrame({"y_true": y, "y_score": score, "site": site})
    attributes = encode_attributes(table, ["site"])
    stat = make_statistic(table, "auc")
    found = search(attributes, stat, np.arange(n), depth=1)
    c = found.candidates.set_index(found.candidates["values"].map(lambda v: attributes[0].levels[v[0]]))
    in_c = site == "C"
    exact = roc_auc_score(y[in_c], score[in_c]) - roc_auc_score(y[~in_c], score[~in_c])
    assert c.loc["C", "effect"] == pytest.approx(exact, abs=0.01)  # 64 score bins: ties within a bin
    assert c["z"].idxmax() == "C"
    result = find_slices(table, ["site"], "auc", seed=1)
    first = result.slices.iloc[0]
    half = split_halves(table, None, 0.5, seed=1)
    test_c, test_rest = in_c & ~half, ~in_c & ~half
    assert first["slice"] == "site=C" and first["significant"]
    assert first["value"] == pytest.approx(roc_auc_score(y[test_c], score[test_c]))
    assert first["rest_value"] == pytest.approx(roc_auc_score(y[test_rest], score[test_rest]))


def test_bound_pruning_keeps_the_best():
    # a strong depth-1 failure (FPR 0.4 vs 0.1 for one site) makes the pool's z threshold high, so
    # small cells of the noise attributes x, y, z (10 values each) cannot reach it and are pruned
    rng = np.random.default_rng(0)
    n = 20_000
    table = pd.DataFrame({"y_true": 0, "site": rng.choice(list("ABCDE"), n)})
    for k in "xyz":
        table[k] = rng.integers(0, 10, n).astype(str)
    rate = np.where(table["site"] == "D", 0.4, 0.1)
    table["y_score"] = np.where(rng.random(n) < rate, 0.9, 0.1)
    attributes = encode_attributes(table, ["site", "x", "y", "z"])
    stat = make_statistic(table, "fpr")
    pruned = search(attributes, stat, np.arange(n), min_positives=0, pool=5)
    full = search(attributes, stat, np.arange(n), min_positives=0, pool=10**9)
    assert pruned.n_cells_pruned > 0 and full.n_cells_pruned == 0
    assert len(pruned.candidates) < len(full.candidates)
    top = np.sort(full.candidates["z"].to_numpy())[-5:]
    np.testing.assert_array_equal(np.sort(pruned.candidates["z"].to_numpy())[-5:], top)
