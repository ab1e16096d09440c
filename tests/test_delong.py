"""DeLong's AUC variance and the two-group test: a published example, by hand, against a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fairmed.metrics.delong import auc_variance, delong_test


def _hanley_mcneil_table1():
    # Hanley & McNeil (1982), Radiology 143:29-36, Table 1: ratings 1-5 of 58 normal and 51 abnormal CT images
    neg = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    pos = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    return np.r_[np.zeros(58), np.ones(51)], np.r_[neg, pos].astype(float)


def test_published_example():
    y, s = _hanley_mcneil_table1()
    auc, var = auc_variance(y, s)
    assert round(auc, 3) == 0.893  # the published area (ties count one half)
    assert auc == pytest.approx(roc_auc_score(y, s))
    # DeLong's nonparametric SE is close to Hanley & McNeil's published 0.032 on these data
    assert math.sqrt(var) == pytest.approx(0.0307244, abs=1e-6)


def test_structural_components_by_hand():
    # positives 0.9, 0.4, 0.6; negatives 0.5, 0.1. V10 = (1, 0.5, 1), V01 = (2/3, 1):
    # AUC = 5/6; var = s2(V10)/3 + s2(V01)/2 = (1/12)/3 + (1/18)/2 = 1/36 + 1/36
    auc, var = auc_variance([1, 1, 1, 0, 0], [0.9, 0.4, 0.6, 0.5, 0.1])
    assert auc == pytest.approx(5 / 6)
    assert var == pytest.approx(1 / 18)
    # ties count one half: V10 of a positive tied with one of two negatives is 0.5
    assert auc_variance([1, 1, 0, 0], [0.5, 0.9, 0.5, 0.1])[0] == pytest.approx((0.75 + 1) / 2)


def test_two_groups_by_hand_and_degenerate():
    res = delong_test([1, 1, 1, 0, 0], [0.9, 0.4, 0.6, 0.5, 0.1], *_hanley_mcneil_table1())
    assert res.difference == pytest.approx(5 / 6 - res.auc_b)
    assert res.se == pytest.approx(math.sqrt(1 / 18 + 0.0307244**2), abs=1e-6)
    assert res.z == pytest.approx(res.difference / res.se)
    assert math.isnan(delong_test([1, 1], [0.2, 0.3], [1, 0], [0.5, 0.1]).p_value)  # one class only


def test_variance_and_level_against_a_simulation():
    rng = np.random.default_rng(0)
    sims, n = 2000, 60
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)]
    aucs, variances, rejected = [], [], 0
    for _ in range(sims):
        a, b = rng.normal(y, 1.0), rng.normal(y, 1.0)  # the same AUC in both groups: H0 holds
        auc, var = auc_variance(y, a)
        aucs.append(auc)
        variances.append(var)
        rejected += delong_test(y, a, y, b).p_value <= 0.05
    # the mean DeLong variance matches the AUC's variance over simulations (within 10%)
    assert np.mean(variances) == pytest.approx(np.var(aucs), rel=0.1)
    # false-alarm rate near 0.05 (MC error ~0.005)
    assert rejected / sims == pytest.approx(0.05, abs=0.015)
