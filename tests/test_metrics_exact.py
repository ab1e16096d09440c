"""Exact values on hand-computed cases: the review paper's toy example, AUC with ties, ECE,
multi-class Eopp0/Eopp1/Eodd, gap forms, FATE and threshold choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairmed.metrics import (
    audit,
    binary_metrics,
    choose_threshold,
    ece,
    eodd,
    eopp0,
    eopp1,
    fate,
    fate_table,
    gap_values,
    multiclass_demographic_parity,
    reliability_table,
)


def toy() -> pd.DataFrame:
    """20 people (the review paper's toy numbers): men accuracy 6/10 = 3/5, women 3/10; half of each
    sex selected (DP holds by sex); race A 6/10 selected vs race B 4/9 (DP fails by race); one
    person's race unrecorded."""
    selected = np.zeros(20, dtype=int)
    selected[[0, 1, 2, 3, 4, 10, 11, 12, 13, 14]] = 1
    y = np.zeros(20, dtype=int)
    y[[0, 1, 2, 8, 9]] = 1  # men: TP 0-2, FP 3-4, TN 5-7, FN 8-9
    y[[10, 17, 18, 19]] = 1  # women: TP 10, FP 11-14, TN 15-16, FN 17-19
    race = np.array([None] * 20, dtype=object)
    race[[0, 1, 2, 10, 11, 12, 5, 6, 15, 16]] = "A"
    race[[3, 4, 13, 14, 7, 8, 9, 17, 18]] = "B"
    return pd.DataFrame(
        {
            "y_true": y,
            "y_score": np.where(selected == 1, 0.9, 0.1),
            "sex": ["male"] * 10 + ["female"] * 10,
            "race": race,
        }
    )


def _value(frame, attribute, group, metric):
    row = frame[(frame["attribute"] == attribute) & (frame["group"] == group) & (frame["metric"] == metric)]
    assert len(row) == 1, (attribute, group, metric)
    return float(row["value"].iloc[0])


def test_review_paper_toy_example():
    frame = audit(toy(), ["sex", "race"], bootstrap=0, min_group_size=0).to_frame()
    assert _value(frame, "sex", "male", "accuracy") == pytest.approx(3 / 5)
    assert _value(frame, "sex", "female", "accuracy") == pytest.approx(3 / 10)
    assert _value(frame, "sex", "difference", "accuracy") == pytest.approx(0.3)
    assert _value(frame, "sex", "criterion", "accuracy_parity") == pytest.approx(0.3)
    # demographic parity holds by sex ...
    assert _value(frame, "sex", "male", "selection_rate") == pytest.approx(0.5)
    assert _value(frame, "sex", "criterion", "demographic_parity") == pytest.approx(0.0)
    assert _value(frame, "sex", "ratio", "selection_rate") == pytest.approx(1.0)
    # ... and fails by race: 6/10 vs 4/9 (ratio 20/27 < 4/5)
    assert _value(frame, "race", "A", "selection_rate") == pytest.approx(6 / 10)
    assert _value(frame, "race", "B", "selection_rate") == pytest.approx(4 / 9)
    assert _value(frame, "race", "criterion", "demographic_parity") == pytest.approx(6 / 10 - 4 / 9)
    assert _value(frame, "race", "ratio", "selection_rate") == pytest.approx(20 / 27)
    assert _value(frame, "race", "A", "n") == 10 and _value(frame, "race", "B", "n") == 9
    # confusion rates: men TPR 3/5 FPR 2/5, women TPR 1/4 FPR 4/6
    assert _value(frame, "sex", "male", "tpr") == pytest.approx(3 / 5)
    assert _value(frame, "sex", "female", "fpr") == pytest.approx(4 / 6)
    assert _value(frame, "sex", "criterion", "equal_opportunity") == pytest.approx(0.35)
    assert _value(frame, "sex", "criterion", "equalized_odds") == pytest.approx(0.35)
    assert _value(frame, "sex", "criterion", "eopp0") == pytest.approx(3 / 5 - 2 / 6)
    assert _value(frame, "sex", "criterion", "eodd") == pytest.approx(abs(0.35 + (0.4 - 4 / 6)) / 2)
    # signed: a = female (first group), b = male
    assert _value(frame, "sex", "criterion", "eodd_signed") == pytest.approx(
        ((0.25 - 0.6) + (4 / 6 - 0.4)) / 2
    )
    # SER of accuracy: error 0.7 vs 0.4
    assert _value(frame, "sex", "ser", "accuracy") == pytest.approx(0.7 / 0.4)
    assert _value(frame, "sex", "worst", "accuracy") == pytest.approx(0.3)


def test_auc_with_ties_brier_and_cross_entropy():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    table = binary_metrics(y, s)
    # pairs (pos, neg): .35 beats .1; .8 beats all three; .4 beats .1 and ties twice -> 6 of 9
    assert table.loc["overall", "auc"] == pytest.approx(6 / 9)
    assert table.loc["overall", "brier"] == pytest.approx(np.mean((s - y) ** 2))
    expected_bce = -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert table.loc["overall", "bce"] == pytest.approx(expected_bce)
    assert table.loc["overall", "n"] == 6


def test_ece_equal_width_bins():
    y = np.array([0, 1, 1, 1])
    s = np.array([0.05, 0.15, 0.95, 0.85])
    assert ece(y, s, n_bins=10) == pytest.approx((0.05 + 0.85 + 0.05 + 0.15) / 4)
    assert ece(y, s, n_bins=2) == pytest.approx((0.8 + 0.2) / 4)
    table = binary_metrics(y, s, n_bins=2)
    assert table.loc["overall", "ece"] == pytest.approx(0.25)


def test_multiclass_equal_odds_measures_by_hand():
    y = [0, 1, 2, 0, 0, 1, 2, 2]
    pred = [0, 1, 1, 2, 0, 0, 2, 2]
    groups = ["a"] * 4 + ["b"] * 4
    assert eopp0(y, pred, groups, n_classes=3) == pytest.approx(1 / 3)
    assert eopp1(y, pred, groups, n_classes=3) == pytest.approx(2.5 / 3)
    assert eodd(y, pred, groups, n_classes=3) == pytest.approx((5 / 6 + 4 / 3 + 2 / 3) / 3 / 2)
    assert eopp0(y, pred, groups, n_classes=3, signed=True) == pytest.approx(-1 / 9)
    assert eopp1(y, pred, groups, n_classes=3, signed=True) == pytest.approx(-1 / 6)
    assert eodd(y, pred, groups, n_classes=3, signed=True) == pytest.approx((-5 / 6 + 4 / 3 - 2 / 3) / 3 / 2)
    assert multiclass_demographic_parity(y, pred, groups, n_classes=3) == pytest.approx(1.0)
    frame = pd.DataFrame({"y_true": y, "y_pred": pred, "g": groups})
    res = audit(frame, ["g"], pred="y_pred", task="multiclass", bootstrap=0, min_group_size=0).to_frame()
    assert _value(res, "g", "a", "accuracy") == pytest.approx(0.5)
    assert _value(res, "g", "b", "accuracy") == pytest.approx(0.75)
    assert _value(res, "g", "criterion", "eopp1") == pytest.approx(2.5 / 3)
    assert _value(res, "g", "criterion", "dp_multiclass") == pytest.approx(1.0)


def test_gap_forms():
    gaps = gap_values(np.array([0.8, 0.6, 0.7]), "auc")
    assert gaps["difference"] == pytest.approx(0.2)
    assert gaps["ratio"] == pytest.approx(0.75)
    assert gaps["worst"] == pytest.approx(0.6)
    assert gaps["std"] == pytest.approx(np.std([0.8, 0.6, 0.7]))
    assert gaps["ser"] == pytest.approx(0.4 / 0.2)
    lower = gap_values(np.array([0.1, 0.3, np.nan]), "fpr")
    assert lower["worst"] == pytest.approx(0.3)
    assert lower["ser"] == pytest.approx(3.0)
    assert "worst" not in gap_values(np.array([0.1, 0.3]), "selection_rate")
    assert np.isnan(gap_values(np.array([0.5, np.nan]), "auc")["difference"])


def test_fate_reproduces_channel_pruning_paper():
    # F1 0.520 vs baseline 0.510, Eodd 0.139 vs 0.182 -> FATE_Eodd = 0.2559
    assert fate(0.520, 0.510, 0.139, 0.182) == pytest.approx(0.2559, abs=5e-5)
    assert fate(0.5, 0.5, 0.1, 0.2, lam=2.0) == pytest.approx(1.0)


def test_threshold_chosen_on_validation_rows():
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.7]) == pytest.approx(0.6)
    frame = pd.DataFrame(
        {
            "split": ["val"] * 4 + ["test"] * 4,
            "y_true": [0, 0, 1, 1, 0, 1, 0, 1],
            "y_score": [0.1, 0.2, 0.6, 0.7, 0.55, 0.65, 0.3, 0.9],
            "sex": ["f", "m"] * 4,
        }
    )
    res = audit(frame, ["sex"], threshold="youden", bootstrap=0, min_group_size=0).to_frame()
    test = res[res["split"] == "test"]
    assert _value(test, "overall", "overall", "threshold") == pytest.approx(0.6)
    assert _value(test, "overall", "overall", "selection_rate") == pytest.approx(2 / 4)  # .65, .9


def test_values_per_group_summaries():
    frame = pd.DataFrame({"recon_mse": [1.0, 2.0, 3.0, 4.0, 10.0, 20.0], "fst": [1, 1, 1, 1, 6, 6]})
    res = audit(frame, ["fst:12-56"], values=["recon_mse"], bootstrap=0, min_group_size=0).to_frame()
    assert _value(res, "fst", "FST 1-2", "recon_mse_mean") == pytest.approx(2.5)
    assert _value(res, "fst", "FST 1-2", "recon_mse_median") == pytest.approx(2.5)
    assert _value(res, "fst", "FST 1-2", "recon_mse_q25") == pytest.approx(1.75)
    assert _value(res, "fst", "FST 5-6", "recon_mse_mean") == pytest.approx(15.0)
    assert _value(res, "fst", "difference", "recon_mse_mean") == pytest.approx(12.5)
    assert _value(res, "fst", "worst", "recon_mse_mean") == pytest.approx(15.0)


def test_fate_table_from_results():
    rows = [
        ("erm", 0, "overall", "overall", "accuracy", 0.510),
        ("prune", 0, "overall", "overall", "accuracy", 0.520),
        ("erm", 0, "fst", "criterion", "eodd", 0.182),
        ("prune", 0, "fst", "criterion", "eodd", 0.139),
    ]
    results = pd.DataFrame(rows, columns=["method", "seed", "attribute", "group", "metric", "value"])
    table = fate_table(results, baseline="erm", accuracy="accuracy", fairness="eodd")
    prune = table[table["method"] == "prune"].iloc[0]
    assert prune["metric"] == "fate_eodd" and prune["attribute"] == "fst"
    assert prune["value"] == pytest.approx(0.2559, abs=5e-5)
    assert table[table["method"] == "erm"]["value"].iloc[0] == pytest.approx(0.0)


def test_reliability_table_counts():
    table = reliability_table([0, 1, 1, 1], [0.05, 0.15, 0.95, 0.85], n_bins=2)
    assert list(table["n"]) == [2, 2]
    assert table["mean_score"].tolist() == pytest.approx([0.1, 0.9])
    assert table["fraction_positive"].tolist() == pytest.approx([0.5, 1.0])


def test_intersectional_groups_and_overall_rows():
    frame = toy().assign(race=lambda d: d["race"].fillna("A"))
    res = audit(frame, ["sex", "race"], intersect=True, bootstrap=0, min_group_size=0).to_frame()
    inter = res[res["attribute"] == "sex*race"]
    assert set(inter["group"]) >= {"female & A", "female & B", "male & A", "male & B"}
    # men of race A: rows 0,1,2 (selected) and 5,6 (not) -> selection rate 3/5
    assert _value(res, "sex*race", "male & A", "selection_rate") == pytest.approx(3 / 5)
    assert _value(res, "overall", "overall", "n") == 20
    assert _value(res, "overall", "overall", "accuracy") == pytest.approx(9 / 20)
