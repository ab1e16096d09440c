"""GCE-guided resampling: which subgroups are up/down-sampled and exactly which rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmed.errors import InputError
from fairmed.mitigate.resampling import ResamplingConfig, false_positive_rates, modulation, plan_resampling

# 10 female rows (positions 0-9), 10 male rows (10-19). Negatives: female 0-5 (6), male 10-15 (6).
# Detector false positives: female 0, 1, 2 (FPR 3/6), male 10 (FPR 1/6); overall 4/12 = 1/3.
SEX = pd.Series(["female"] * 10 + ["male"] * 10)
Y = np.array([0] * 6 + [1] * 4 + [0] * 6 + [1] * 4)
PRED = np.array([1, 1, 1, 0, 0, 0, 1, 1, 1, 1] + [1, 0, 0, 0, 0, 0, 1, 1, 1, 1])
LOSS = np.array(
    [0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.05, 0.7, 0.6, 0.4]
    + [0.15, 0.25, 0.35, 0.01, 0.5, 0.6, 0.02, 0.9, 0.8, 0.7]
)


def test_false_positive_rates_by_hand():
    per_group, overall = false_positive_rates(Y, PRED, SEX)
    assert per_group.to_dict() == {"female": 0.5, "male": pytest.approx(1 / 6)}
    assert overall == pytest.approx(1 / 3)


def test_upsampling_duplicates_lowest_loss_rows_of_high_fpr_subgroup():
    plan = plan_resampling(
        LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.3, up_of="subgroup")
    )
    # female FPR 1/2 > 1/3: duplicate round(0.3 * 10) = 3 lowest-loss female rows: 6 (0.05), 1 (0.1), 4 (0.2)
    assert sorted(plan.duplicated.tolist()) == [1, 4, 6]
    assert plan.removed.tolist() == []
    assert plan.size == 23
    up = plan.decisions.set_index("group")
    assert up.loc["female", "applies"] and not up.loc["male", "applies"]


def test_downsampling_removes_modulated_share_of_low_fpr_large_subgroup():
    cfg = ResamplingConfig(mode="down", down_fraction=0.5, gap_center=0.2, gap_scale=0.1, share_scale=0.1)
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX}, cfg)
    # male: share 0.5 > 0.15, FPR 1/6 < 1/3. spread d = 1/2 - 1/6 = 1/3.
    m_gap = 1 / (1 + math.exp(-(1 / 3 - 0.2) / 0.1))  # 0.7914
    m_share = 1 / (1 + math.exp(-(0.5 - 0.15) / 0.1))  # 0.9707
    assert modulation(1 / 3, 0.5, cfg) == pytest.approx(m_gap * m_share)
    k = round(0.5 * 10 * m_gap * m_share)  # round(3.84) = 4
    assert k == 4
    # the 4 lowest-loss male rows: 13 (0.01), 16 (0.02), 10 (0.15), 11 (0.25)
    assert plan.removed.tolist() == [10, 11, 13, 16]
    assert plan.size == 16


DOWN_UP = ResamplingConfig(
    mode="down_up",
    up_fraction=0.3,
    down_fraction=0.5,
    gap_center=0.2,
    gap_scale=0.1,
    share_scale=0.1,
    up_of="subgroup",
)


def test_down_then_up_on_sex_removes_then_duplicates_exact_rows():
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX}, DOWN_UP)
    # down (as above): male loses its 4 lowest-loss rows 10, 11, 13, 16. up: female FPR 1/2 > 1/3 (FPRs of
    # the detector on the full set), none of its 10 rows removed: round(0.3 * 10) = 3 -> 6, 1, 4
    assert plan.removed.tolist() == [10, 11, 13, 16]
    assert plan.duplicated.tolist() == [1, 4, 6]
    assert plan.size == 20 - 4 + 3 == 19
    dec = plan.decisions.set_index(["step", "group"])
    assert dec.loc[("up", "female"), ["n", "n_eligible", "n_selected"]].tolist() == [10, 10, 3]
    assert dec.loc[("down", "male"), ["n", "n_eligible", "n_selected"]].tolist() == [10, 10, 4]


def test_down_then_up_over_two_attributes_exact_rows():
    age = pd.Series(["y"] * 5 + ["o"] * 5 + ["y"] * 5 + ["o"] * 5)
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX, "age": age}, DOWN_UP)
    # age FPRs: y negatives 0-4, 10-14 with false positives 0, 1, 2, 10 -> 4/10; o negatives 5, 15, none
    # predicted positive -> 0; overall 1/3; spread 0.4.
    # down, sex: rows 10, 11, 13, 16 (as above). down, age: o (share 1/2, FPR 0 < 1/3) loses
    # round(0.5 * 10 * m_gap(0.4) * m_share(0.5)) = round(5 * 0.8808 * 0.9707) = round(4.27) = 4 rows of
    # its 10 (5-9, 15-19), lowest loss first: 16 (0.02), 6 (0.05), 9 (0.4), 8 (0.6; ties 15 at 0.6, the
    # lower position first). y (FPR 0.4) is not downsampled. Removed = the union.
    assert round(5 * modulation(0.4, 0.5, DOWN_UP), 2) == 4.27
    assert plan.removed.tolist() == [6, 8, 9, 10, 11, 13, 16]
    # up, sex: female (FPR 1/2) has 7 rows left (0-5, 7): round(0.3 * 7) = 2 -> 1 (0.1), 4 (0.2).
    # up, age: y (FPR 0.4 > 1/3) has 7 rows left (0-4, 12, 14): 2 -> 1 (0.1), 4 (0.2) again.
    # Duplications add up: rows 1 and 4 appear three times.
    assert plan.duplicated.tolist() == [1, 1, 4, 4]
    assert plan.size == 20 - 7 + 4
    dec = plan.decisions.set_index(["attribute", "step", "group"])
    cols = ["n", "n_eligible", "applies", "n_selected"]
    assert dec.loc[("sex", "up", "female"), cols].tolist() == [10, 7, True, 2]
    assert dec.loc[("age", "up", "y"), cols].tolist() == [10, 7, True, 2]
    assert dec.loc[("age", "down", "o"), cols].tolist() == [10, 10, True, 4]
    assert dec.loc[("age", "down", "y"), cols].tolist() == [10, 10, False, 0]


def test_down_then_up_never_duplicates_a_removed_row():
    rng = np.random.default_rng(0)
    n = 400
    groups = {
        "sex": pd.Series(rng.choice(["female", "male"], n)),
        "race": pd.Series(rng.choice(list("ABCD"), n)),
    }
    y = rng.integers(0, 2, n)
    pred = rng.integers(0, 2, n)
    loss = rng.random(n)
    plan = plan_resampling(
        loss, y, pred, groups, ResamplingConfig(mode="down_up", down_fraction=0.3, up_of="subgroup")
    )
    assert not set(plan.duplicated.tolist()) & set(plan.removed.tolist())
    assert plan.size == n - len(plan.removed) + len(plan.duplicated)


def test_bad_losses_are_one_line_errors():
    with pytest.raises(InputError, match=r"NaN or infinite at rows \[2\]"):
        plan_resampling(np.r_[LOSS[:2], np.nan, LOSS[3:]], Y, PRED, {"sex": SEX}, ResamplingConfig())
    with pytest.raises(InputError, match="y_pred has 3 rows"):
        plan_resampling(LOSS, Y, PRED[:3], {"sex": SEX}, ResamplingConfig())


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=8, max_value=80).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n),
            st.lists(st.integers(0, 1), min_size=n, max_size=n),
            st.lists(st.integers(0, 1), min_size=n, max_size=n),
            st.lists(st.floats(0, 5, allow_nan=False), min_size=n, max_size=n),
        )
    ),
    st.sampled_from(["up", "down", "down_up"]),
)
def test_plan_properties(data, mode):
    groups, y, pred, loss = (np.asarray(v) for v in data)
    plan = plan_resampling(
        loss,
        y,
        pred,
        {"g": pd.Series(groups)},
        ResamplingConfig(mode=mode, down_fraction=0.5, up_of="subgroup"),
    )
    n = len(loss)
    assert plan.positions.min(initial=0) >= 0 and plan.positions.max(initial=0) < n
    assert len(set(plan.removed.tolist())) == len(plan.removed)
    # every selected row is among its subgroup's lowest losses
    for row in plan.decisions.itertuples():
        if row.step == "up":  # K of the rows left after downsampling, not of the whole subgroup
            assert row.n_selected == (round(0.25 * row.n_eligible) if row.applies else 0)
        if not row.applies or row.n_selected == 0:
            continue
        member = groups == row.group
        chosen = plan.duplicated if row.step == "up" else plan.removed
        chosen = np.asarray([p for p in chosen if member[p]])
        others = np.setdiff1d(np.flatnonzero(member), chosen)
        if row.step == "up":
            others = np.setdiff1d(others, plan.removed)
        if len(others) and len(chosen):
            assert loss[chosen].max() <= loss[others].min()


# ------------------------------------------------------------------ the paper-fidelity options
def test_allocate_by_hand():
    from fairmed.mitigate.resampling import allocate

    assert allocate(7, [10, 0, 5]) == [5, 0, 2]  # 4.67 / 0 / 2.33: floors 4, 0, 2, the largest remainder +1
    assert allocate(2, [1, 1, 1]) == [1, 1, 0]  # equal remainders: the earlier subgroups first
    assert allocate(5, [2]) == [5]
    assert allocate(4, [0, 0]) == [0, 0] and allocate(0, [3, 3]) == [0, 0]


def test_dataset_budget_grows_the_training_set_by_exactly_k():
    # n = 20, K = 0.3: B = round(0.3 * 20) = 6 duplicates, all to female (the one qualifying subgroup),
    # in increasing loss: positions 6 (.05), 1 (.1), 4 (.2), 3 (.3), 9 (.4), 2 (.5)
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.3))
    assert sorted(plan.duplicated.tolist()) == [1, 2, 3, 4, 6, 9]
    assert plan.size == 26 and len(plan.duplicated) == round(0.3 * 20)
    # the per-subgroup rule takes 30% of the 10 female rows: 3
    sub = plan_resampling(
        LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.3, up_of="subgroup")
    )
    assert sorted(sub.duplicated.tolist()) == [1, 4, 6]


def test_dataset_budget_cycles_through_a_small_subgroup_and_spreads_over_attributes():
    # K = 0.75: B = 15 > 10 female rows: every female row once, the 5 lowest-loss ones twice
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.75))
    counts = np.bincount(plan.duplicated, minlength=20)
    assert counts[:10].tolist() == [1, 2, 1, 2, 2, 1, 2, 1, 1, 2] and counts[10:].sum() == 0
    # a second attribute with a qualifying subgroup of 4 rows: B = 6 split 10 : 4 -> 4.29 / 1.71 -> 4 and 2
    site = pd.Series(["a"] * 4 + ["b"] * 16)
    y2 = np.array([0] * 4 + list(Y[4:]))
    pred2 = np.array([1] * 4 + list(PRED[4:]))
    plan = plan_resampling(
        LOSS, y2, pred2, {"sex": SEX, "site": site}, ResamplingConfig(mode="up", up_fraction=0.3)
    )
    up = plan.decisions[plan.decisions["step"] == "up"].set_index(["attribute", "group"])["n_selected"]
    assert up.to_dict() == {("sex", "female"): 4, ("sex", "male"): 0, ("site", "a"): 2, ("site", "b"): 0}
    assert len(plan.duplicated) == 6


def test_pick_highest_modulation_none_and_rates_from_elsewhere():
    plan = plan_resampling(
        LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.3, pick="highest")
    )
    assert sorted(plan.duplicated.tolist()) == [0, 2, 5, 7, 8, 9]  # female losses .9 .8 .7 .6 .5 .4
    # plain K% downsampling of male (FPR 1/6 < 1/3, share 0.5 > 0.15): round(0.5 * 10) = 5 lowest losses
    cfg = ResamplingConfig(mode="down", down_fraction=0.5, modulation="none")
    assert plan_resampling(LOSS, Y, PRED, {"sex": SEX}, cfg).removed.tolist() == [10, 11, 12, 13, 16]
    # FPRs given from elsewhere (the baseline on validation): now male is the high-FPR subgroup
    rates = {"sex": (pd.Series({"female": 0.1, "male": 0.6}), 0.3)}
    plan = plan_resampling(LOSS, Y, PRED, {"sex": SEX}, ResamplingConfig(mode="up", up_fraction=0.1), rates)
    assert sorted(plan.duplicated.tolist()) == [13, 16]  # male's two lowest losses (.01, .02)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c"]), min_size=4, max_size=40),
    st.sampled_from([0.2, 0.25, 0.5]),
    st.integers(0, 10_000),
)
def test_dataset_budget_exact_count_property(groups, k, seed):
    rng = np.random.default_rng(seed)
    n = len(groups)
    y, pred, loss = rng.integers(0, 2, n), rng.integers(0, 2, n), rng.random(n)
    plan = plan_resampling(
        loss, y, pred, {"g": pd.Series(groups)}, ResamplingConfig(mode="up", up_fraction=k)
    )
    qualifies = plan.decisions["applies"].any()
    assert len(plan.duplicated) == (round(k * n) if qualifies else 0)
