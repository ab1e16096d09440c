"""Calibrated equalized odds (Pleiss et al. 2017): a hand-derived example, the properties the method
promises, and AIF360's CalibratedEqOddsPostprocessing on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmed.errors import InputError, SpecError
from fairmed.mitigate.thresholds import (
    GroupRules,
    apply_rules,
    calibrated_cost,
    fit_calibrated_eqodds,
    generalized_rates,
)

# group A: base rate 1/2, GFPR = mean(0.3, 0.1) = 0.2, GFNR = mean(0.1, 0.3) = 0.2
# group B: base rate 1/4, GFPR = (0.5 + 0.2 + 0.1) / 3 = 0.8 / 3, GFNR = 1 - 0.6 = 0.4
SCORES = np.array([0.9, 0.7, 0.3, 0.1, 0.6, 0.5, 0.2, 0.1])
Y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
GROUPS = np.array(["A"] * 4 + ["B"] * 4)


@pytest.mark.parametrize(
    "constraint,mix_a",
    [
        # weighted: A 0.5*0.2*0.5 + 0.5*0.2*0.5 = 0.1, B 0.5*(0.8/3)*0.75 + 0.5*0.4*0.25 = 0.15;
        # A's trivial cost mu(1 - mu) = 0.25 -> A mixes (0.15 - 0.1) / (0.25 - 0.1) = 1/3
        ("weighted", 1 / 3),
        # fpr: A 0.2, B 0.8/3, A's trivial GFPR = mu = 0.5 -> (0.8/3 - 0.2) / (0.5 - 0.2) = 2/9
        ("fpr", 2 / 9),
        # fnr: A 0.2, B 0.4, A's trivial GFNR = 1 - mu = 0.5 -> (0.4 - 0.2) / (0.5 - 0.2) = 2/3
        ("fnr", 2 / 3),
    ],
)
def test_hand_derived_mix_rates(constraint, mix_a):
    rules = fit_calibrated_eqodds(SCORES, Y, GROUPS, constraint)
    assert rules.base_rates == {"A": 0.5, "B": 0.25}
    assert rules.mix_rates["A"] == pytest.approx(mix_a, rel=1e-12)
    assert rules.mix_rates["B"] == 0.0
    # expected decisions: A keeps score >= 0.5 with weight 1 - mix, else its base rate 0.5 (>= 0.5: 1)
    p = rules.positive_probability(SCORES, GROUPS)
    assert p.tolist() == pytest.approx([1, 1, mix_a, mix_a, 1, 1, 0, 0])


def test_generalized_rates_and_costs_by_hand():
    assert generalized_rates(SCORES[4:], Y[4:]) == pytest.approx((0.8 / 3, 0.4))
    assert calibrated_cost(0.2, 0.4, 0.25, "weighted") == pytest.approx(0.5 * 0.2 * 0.75 + 0.5 * 0.4 * 0.25)
    assert calibrated_cost(0.2, 0.4, 0.25, "fpr") == 0.2
    assert calibrated_cost(0.2, 0.4, 0.25, "fnr") == 0.4


def test_mixed_scores_equalise_the_expected_cost():
    rng = np.random.default_rng(0)
    n = 4000
    g = np.where(rng.random(n) < 0.5, "F", "M")
    score = np.where(g == "F", rng.beta(2, 2, n), rng.beta(0.5, 0.5, n))  # M: sharper scores
    y = (rng.random(n) < score).astype(int)  # calibrated by construction
    rules = fit_calibrated_eqodds(score, y, g, "weighted")
    assert rules.mix_rates["M"] > 0 and rules.mix_rates["F"] == 0
    # over many draws the mixed scores' costs meet: average the score over 200 seeds
    mixed = np.mean([rules.mixed_scores(score, g, seed) for seed in range(200)], axis=0)
    costs = {
        k: calibrated_cost(*generalized_rates(mixed[g == k], y[g == k]), y[g == k].mean(), "weighted")
        for k in ("F", "M")
    }
    assert costs["F"] == pytest.approx(costs["M"], abs=2e-3)
    # a row takes its group's base rate or keeps its score; decisions threshold the mixed score
    one = rules.mixed_scores(score, g, 7)
    changed = one != score
    assert np.allclose(one[changed], np.where(g[changed] == "M", rules.base_rates["M"], np.nan))
    assert (rules.predict(score, g, 7) == (one >= 0.5)).all()


def test_rules_round_trip_and_apply(tmp_path):
    rules = fit_calibrated_eqodds(SCORES, Y, GROUPS, "fnr", attribute="sex")
    back = GroupRules.load(rules.save(tmp_path / "rules.json"))
    assert back == rules
    frame = pd.DataFrame({"y_score": SCORES})
    applied = apply_rules(frame, back, pd.Series(GROUPS), seed=3)
    assert applied["y_pred"].tolist() == rules.predict(SCORES, GROUPS, 3).tolist()


def test_bad_inputs_are_refused_with_one_line():
    with pytest.raises(SpecError, match="cost constraint"):
        fit_calibrated_eqodds(SCORES, Y, GROUPS, "tpr")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="single class"):
        fit_calibrated_eqodds(SCORES[:6], np.array([1, 1, 0, 0, 1, 1]), GROUPS[:6])


def test_matches_aif360():
    from aif360.algorithms.postprocessing import CalibratedEqOddsPostprocessing
    from aif360.datasets import BinaryLabelDataset

    rng = np.random.default_rng(1)
    n = 600
    sex = (rng.random(n) < 0.4).astype(float)  # 1: privileged
    score = np.clip(np.where(sex == 1, rng.beta(0.6, 0.6, n), rng.beta(2, 3, n)), 1e-3, 1 - 1e-3)
    y = (rng.random(n) < score).astype(float)
    frame = pd.DataFrame({"sex": sex, "label": y})
    truth = BinaryLabelDataset(df=frame, label_names=["label"], protected_attribute_names=["sex"])
    pred = truth.copy(deepcopy=True)
    pred.scores = score.reshape(-1, 1)
    groups = np.where(sex == 1, "privileged", "unprivileged")
    mixes = []
    for constraint in ("weighted", "fpr", "fnr"):
        ref = CalibratedEqOddsPostprocessing(
            unprivileged_groups=[{"sex": 0}],
            privileged_groups=[{"sex": 1}],
            cost_constraint=constraint,
            seed=0,
        ).fit(truth, pred)
        ours = fit_calibrated_eqodds(score, y.astype(int), groups, constraint)
        assert ours.base_rates["privileged"] == pytest.approx(ref.base_rate_priv, rel=1e-12)
        assert ours.base_rates["unprivileged"] == pytest.approx(ref.base_rate_unpriv, rel=1e-12)
        # AIF360 leaves an infeasible share above 1; ours caps it (every row takes the base rate)
        assert ours.mix_rates["privileged"] == pytest.approx(min(1, ref.priv_mix_rate), rel=1e-10, abs=1e-15)
        assert ours.mix_rates["unprivileged"] == pytest.approx(
            min(1, ref.unpriv_mix_rate), rel=1e-10, abs=1e-15
        )
        mixes.append(max(ref.priv_mix_rate, ref.unpriv_mix_rate))
        # AIF360's decisions: its draws replace a share of rows by the base rate; ours in expectation
        labels = ref.predict(pred).labels.ravel()
        expected = ours.positive_probability(score, groups)
        for name, code in (("privileged", 1), ("unprivileged", 0)):
            m = sex == code
            assert labels[m].mean() == pytest.approx(expected[m].mean(), abs=0.06)
    assert 0 < min(mixes) < 1  # at least one constraint is fitted with a share strictly inside (0, 1)


def test_cli_postprocess_calibrated_eqodds(tmp_path, capsys):
    from fairmed.cli import main

    frame = pd.DataFrame({"y_true": Y, "y_score": SCORES, "sex": np.where(GROUPS == "A", "female", "male")})
    frame.to_csv(tmp_path / "val.csv", index=False)
    args = ["postprocess", str(tmp_path / "val.csv"), str(tmp_path / "val.csv"), "--attr", "sex"]
    args += [
        "--method",
        "calibrated_eqodds",
        "--cost-constraint",
        "fnr",
        "--rules-out",
        str(tmp_path / "r.json"),
    ]
    main([*args, "--out", str(tmp_path / "applied.csv")])
    out = capsys.readouterr().out
    assert "calibrated_eqodds for fnr on sex" in out
    assert "female: 0.667 of its rows take the base rate 0.5000" in out
    rules = GroupRules.load(tmp_path / "r.json")
    applied = pd.read_csv(tmp_path / "applied.csv")
    assert applied["y_pred"].tolist() == rules.predict(SCORES, frame["sex"].to_numpy(), 0).tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.sampled_from(["fpr", "fnr", "weighted"]))
def test_every_group_is_raised_to_the_costliest(seed, k, constraint):
    # the expected cost of a mixed group is linear in its share: (1 - m) C_g + m C_trivial,g = C_max
    rng = np.random.default_rng(seed)
    g = rng.integers(0, k, 400).astype(str)
    score = rng.beta(1 + rng.random(k)[g.astype(int)] * 3, 2)
    y = (rng.random(400) < score).astype(int)
    y[:k], g[:k] = 1, np.arange(k).astype(str)  # every group has both classes
    y[k : 2 * k], g[k : 2 * k] = 0, np.arange(k).astype(str)
    rules = fit_calibrated_eqodds(score, y, g, constraint)
    costs, trivial = {}, {}
    for name in rules.mix_rates:
        m = g == name
        mu = y[m].mean()
        costs[name] = calibrated_cost(*generalized_rates(score[m], y[m]), mu, constraint)
        trivial[name] = calibrated_cost(mu, 1 - mu, mu, constraint)
    top = max(costs.values())
    for name, mix in rules.mix_rates.items():
        reached = (1 - mix) * costs[name] + mix * trivial[name]
        assert reached == pytest.approx(top, abs=1e-12) or (mix == 1.0 and trivial[name] < top)
