"""Post-processing rules: exact thresholds on hand-made scores, gaps met, fairlearn as a peer."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin

from fairmed.cli import main
from fairmed.errors import InputError
from fairmed.mitigate.thresholds import (
    GroupRules,
    fit_reject_option,
    fit_thresholds,
    roc_vertices,
    upper_hull,
)

# group a: positives 0.9 0.8 0.7 0.6, negatives 0.65 0.4 0.3; group b: positives 0.6 0.5, negatives 0.55 0.2
S = np.array([0.9, 0.8, 0.7, 0.6, 0.65, 0.4, 0.3, 0.6, 0.5, 0.55, 0.2])
Y = np.array([1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0])
G = np.array(["a"] * 7 + ["b"] * 4)


def _rule_thresholds(rules: GroupRules) -> dict[str, float]:
    return {k: v.components[0].threshold for k, v in rules.rules.items()}


def test_fixed_tpr_thresholds_are_the_kth_positive_score():
    rules = fit_thresholds(S, Y, G, "tpr", value=0.5)
    # a: ceil(0.5*4)=2nd largest positive = 0.8; b: ceil(0.5*2)=1st = 0.6
    assert _rule_thresholds(rules) == {"a": 0.8, "b": 0.6}


def test_fixed_fpr_thresholds():
    rules = fit_thresholds(S, Y, G, "fpr", value=1 / 3)
    # a negatives 0.65 0.4 0.3 -> 1st = 0.65; b negatives 0.55 0.2 -> ceil(2/3)=1st = 0.55
    assert _rule_thresholds(rules) == {"a": 0.65, "b": 0.55}


def _brute_force_equal_tpr(s, y, g):
    """Max-accuracy pair of thresholds (one per group) with exactly equal TPR."""
    best = (-1, None)
    cands = {k: np.unique(s[g == k]) for k in ("a", "b")}
    for ta, tb in itertools.product(cands["a"], cands["b"]):
        pred = np.where(g == "a", s >= ta, s >= tb)
        tpr = [pred[(g == k) & (y == 1)].mean() for k in ("a", "b")]
        if tpr[0] == tpr[1]:
            acc = (pred == y).mean()
            if acc > best[0]:
                best = (acc, (ta, tb))
    return best


def test_equal_opportunity_matches_brute_force_on_hand_made_scores():
    rules = fit_thresholds(S, Y, G, "equal_opportunity")
    acc, (ta, tb) = _brute_force_equal_tpr(S, Y, G)
    # by hand: TPR 1 at a>=0.6 (FP 0.65) and b>=0.5 (FP 0.55): 9/11 correct; TPR 1/2: a>=0.8, b>=0.6 -> 8/11
    assert acc == pytest.approx(9 / 11)
    assert _rule_thresholds(rules) == {"a": ta, "b": tb} == {"a": 0.6, "b": 0.5}
    assert rules.fit_summary["tpr_gap"] == 0.0
    assert rules.fit_summary["accuracy"] == pytest.approx(9 / 11)


def test_demographic_parity_thresholds_equalise_selection():
    exact = fit_thresholds(S, Y, G, "demographic_parity")
    assert exact.fit_summary["selection_rate_gap"] == pytest.approx(0.0, abs=1e-12)
    # deterministic: a can select k/7 and b k/4, so the realised gap is only bounded by the tolerance
    det = fit_thresholds(S, Y, G, "demographic_parity", randomize=False, tolerance=0.1)
    assert det.rules["a"].deterministic and det.rules["b"].deterministic
    pred = det.predict(S, G)
    rates = [pred[k == G].mean() for k in ("a", "b")]
    assert abs(rates[0] - rates[1]) <= 0.1
    assert det.fit_summary["selection_rate_gap"] == pytest.approx(abs(rates[0] - rates[1]))


def test_roc_hull_of_hand_made_group():
    m = G == "b"  # b: pos 0.6 0.5, neg 0.55 0.2
    fpr, tpr, th = roc_vertices(S[m], Y[m])
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    hf, ht, hth = upper_hull(fpr, tpr, th)
    # (0, 0) lies below (0, 0.5) and (0.5, 0.5) below the chord: neither is on the upper hull
    assert list(zip(hf.tolist(), ht.tolist())) == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert hth.tolist() == [0.6, 0.5, -np.inf]


def _biased_scores(n=6000, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b"], n, p=[0.7, 0.3])
    y = rng.binomial(1, 0.4, n)
    shift = np.where(g == "a", 1.5, 0.7)
    s = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + y * shift - 0.5 - 0.3 * (g == "b"))))
    return s, y, g


class _ScoreAsProba(BaseEstimator, ClassifierMixin):
    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return np.c_[1 - X[:, 0], X[:, 0]]

    def predict(self, X):
        return (X[:, 0] >= 0.5).astype(int)


def _expected_rates(p, y, g):
    tpr = [p[(g == k) & (y == 1)].mean() for k in ("a", "b")]
    fpr = [p[(g == k) & (y == 0)].mean() for k in ("a", "b")]
    return abs(tpr[0] - tpr[1]), abs(fpr[0] - fpr[1]), float(np.mean(p * y + (1 - p) * (1 - y)))


@pytest.mark.parametrize(
    ("target", "constraint", "acc_tol"),
    [("equalized_odds", "equalized_odds", 0.002), ("equal_opportunity", "true_positive_rate_parity", 0.005)],
)
def test_against_fairlearn_threshold_optimizer(target, constraint, acc_tol):
    s, y, g = _biased_scores()
    ours = fit_thresholds(s, y, g, target)
    p_ours = ours.positive_probability(s, g)
    tpr_gap, fpr_gap, acc = _expected_rates(p_ours, y, g)
    X = s[:, None]
    peer = ThresholdOptimizer(
        estimator=_ScoreAsProba().fit(X, y),
        constraints=constraint,
        prefit=True,
        predict_method="predict_proba",
    ).fit(X, y, sensitive_features=g)
    p_peer = peer._pmf_predict(X, sensitive_features=g)[:, 1]
    peer_tpr_gap, peer_fpr_gap, peer_acc = _expected_rates(p_peer, y, g)
    print(f"{target}: fairmed acc {acc:.4f} tpr gap {tpr_gap:.4f} fpr gap {fpr_gap:.4f}")
    print(f"{target}: fairlearn acc {peer_acc:.4f} tpr gap {peer_tpr_gap:.4f} fpr gap {peer_fpr_gap:.4f}")
    assert acc == pytest.approx(peer_acc, abs=acc_tol)
    assert tpr_gap < 0.002
    if target == "equalized_odds":
        assert fpr_gap < 1e-9 and tpr_gap < 1e-9


def test_equalized_odds_gap_holds_on_sampled_decisions_and_new_data():
    s, y, g = _biased_scores(seed=1)
    rules = fit_thresholds(s, y, g, "equalized_odds")
    pred = rules.predict(s, g, seed=3)
    tpr = [pred[(g == k) & (y == 1)].mean() for k in ("a", "b")]
    fpr = [pred[(g == k) & (y == 0)].mean() for k in ("a", "b")]
    assert abs(tpr[0] - tpr[1]) < 0.04 and abs(fpr[0] - fpr[1]) < 0.04
    s2, y2, g2 = _biased_scores(seed=2)
    gap_before = abs(
        np.mean(s2[(g2 == "a") & (y2 == 1)] >= 0.5) - np.mean(s2[(g2 == "b") & (y2 == 1)] >= 0.5)
    )
    p2 = rules.positive_probability(s2, g2)
    tpr_gap_after, _, _ = _expected_rates(p2, y2, g2)
    assert tpr_gap_after < gap_before / 3


def test_reject_option_flips_inside_band_only():
    # at 0.5, priv selects 3/3 and unpriv 1/3; in the band 0.06 priv 0.55 -> 0 and unpriv 0.45 -> 1
    s = np.array([0.55, 0.9, 0.8, 0.45, 0.1, 0.7])
    y = np.array([0, 1, 1, 1, 0, 1])
    g = np.array(["priv", "priv", "priv", "unpriv", "unpriv", "unpriv"])
    rules = fit_reject_option(s, y, g, privileged=["priv"], bands=[0.0, 0.06], max_accuracy_loss=1.0)
    assert rules.band == 0.06
    # base: priv 3/3, unpriv 1/3 (gap 2/3); with the band: priv 2/3, unpriv 2/3 (gap 0) and accuracy 6/6
    # in the band (|s-0.5|<=0.06): priv -> 0, unpriv -> 1; outside: plain threshold
    assert rules.predict(s, g).tolist() == [0, 1, 1, 1, 0, 1]
    assert rules.fit_summary["selection_rate_gap"] == 0.0 and rules.fit_summary["accuracy"] == 1.0


def test_reject_option_reduces_demographic_parity_gap_within_accuracy_budget():
    s, y, g = _biased_scores(seed=4)
    base = (s >= 0.5).astype(int)
    base_gap = abs(base[g == "a"].mean() - base[g == "b"].mean())
    rules = fit_reject_option(s, y, g, "demographic_parity", max_accuracy_loss=0.03)
    assert rules.privileged == ["a"]
    pred = rules.predict(s, g)
    assert abs(pred[g == "a"].mean() - pred[g == "b"].mean()) < base_gap / 2
    assert (base == y).mean() - (pred == y).mean() <= 0.03 + 1e-12


def test_rules_round_trip_json(tmp_path):
    s, y, g = _biased_scores(n=2000)
    rules = fit_thresholds(s, y, g, "equalized_odds", attribute="sex")
    path = rules.save(tmp_path / "rules.json")
    again = GroupRules.load(path)
    assert again == rules
    np.testing.assert_array_equal(again.predict(s, g, seed=5), rules.predict(s, g, seed=5))


def test_bad_inputs_give_one_line_errors():
    with pytest.raises(InputError, match="at least two groups"):
        fit_thresholds(S, Y, np.array(["a"] * len(S)))
    with pytest.raises(InputError, match="labels must be 0/1"):
        fit_thresholds(S, np.r_[Y[:-1], 2], G)
    with pytest.raises(InputError, match=r"NaN or infinite at rows \[0\]"):
        fit_thresholds(np.r_[np.nan, S[1:]], Y, G)


def test_cli_postprocess_writes_rules_and_decisions(tmp_path, capsys):
    s, y, g = _biased_scores(n=3000)
    fit = pd.DataFrame(
        {"id": range(len(s)), "y_true": y, "y_score": s, "sex": np.where(g == "a", "female", "male")}
    )
    fit.to_csv(tmp_path / "val.csv", index=False)
    fit.to_parquet(tmp_path / "test.parquet")
    main(
        [
            "postprocess",
            str(tmp_path / "val.csv"),
            str(tmp_path / "test.parquet"),
            "--attr",
            "sex",
            "--target",
            "equal_opportunity",
            "--rules-out",
            str(tmp_path / "rules.json"),
            "--out",
            str(tmp_path / "applied.csv"),
        ]
    )
    out = capsys.readouterr().out
    assert "thresholds for equal_opportunity on sex" in out
    applied = pd.read_csv(tmp_path / "applied.csv")
    rules = GroupRules.load(tmp_path / "rules.json")
    expected = rules.predict(s, fit["sex"].to_numpy())
    np.testing.assert_array_equal(applied["y_pred"].to_numpy(), expected)


def test_cli_missing_score_column_exits_2(tmp_path, capsys):
    pd.DataFrame({"y_true": [0, 1], "sex": ["female", "male"]}).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["postprocess", str(tmp_path / "p.csv"), str(tmp_path / "p.csv"), "--attr", "sex"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "column 'y_score' not found" in err
