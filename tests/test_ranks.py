"""Ranks, the Friedman test and Nemenyi's critical difference against Demsar (2006) and scipy; DTO and
CD-diagram cliques by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fairmed.metrics.ranks import (
    average_ranks,
    block_ranks,
    cliques,
    critical_difference,
    distance_to_utopia,
    friedman,
    friedman_statistic,
    iman_davenport,
    nemenyi_q,
    pareto_front,
)

# Demsar 2006, Table 5(a): critical values q_alpha of the two-tailed Nemenyi test, k = 2..10
DEMSAR_Q05 = (1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164)
DEMSAR_Q10 = (1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920)


@pytest.mark.parametrize("alpha,table", [(0.05, DEMSAR_Q05), (0.10, DEMSAR_Q10)])
def test_nemenyi_q_matches_demsar_table(alpha, table):
    # the table is rounded to 3 decimals (two entries are 0.001 off the exact quantile)
    assert [nemenyi_q(k, alpha) for k in range(2, 11)] == pytest.approx(table, abs=1.5e-3)


def test_demsar_worked_example():
    # Demsar 2006, Section 3.2.4: four C4.5 variants on 14 data sets, average ranks 3.143, 2.000,
    # 2.893, 1.964 -> chi2_F = 9.28, F_F = 3.69; CD at alpha 0.05 = 2.569 sqrt(4*5/(6*14)) = 1.25
    chi2 = friedman_statistic(np.array([3.143, 2.000, 2.893, 1.964]), 14)
    assert chi2 == pytest.approx(9.28, abs=0.01)
    f, p = iman_davenport(chi2, 14, 4)
    assert f == pytest.approx(3.69, abs=0.01)
    assert p == pytest.approx(stats.f.sf(f, 3, 39))
    assert critical_difference(4, 14, 0.05) == pytest.approx(1.25, abs=0.005)
    assert critical_difference(4, 14, 0.10) == pytest.approx(2.291 * np.sqrt(20 / 84), abs=1e-3)


def test_block_ranks_best_first_with_mid_ranks():
    v = np.array([[0.9, 0.8, 0.8], [0.1, 0.3, 0.2]])
    assert block_ranks(v).tolist() == [[1.0, 2.5, 2.5], [3.0, 1.0, 2.0]]
    assert block_ranks(v, higher_is_better=False).tolist() == [[3.0, 1.5, 1.5], [1.0, 3.0, 2.0]]
    assert average_ranks(v).tolist() == [2.0, 1.75, 2.25]
    # an incomplete block is dropped
    assert average_ranks(np.vstack([v, [[np.nan, 1.0, 0.0]]])).tolist() == [2.0, 1.75, 2.25]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(3, 6),  # scipy's friedmanchisquare needs 3 methods
    st.integers(3, 8),
    st.integers(0, 10_000),
    st.booleans(),
)
def test_friedman_matches_scipy(k, n, seed, ties):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 3, size=(n, k)).astype(float) if ties else rng.normal(size=(n, k))
    if np.all(values == values[:, :1]):  # every block ties every method: scipy divides by zero
        return
    result = friedman(values)
    expected = stats.friedmanchisquare(*values.T)
    assert result.chi2 == pytest.approx(expected.statistic, rel=1e-10)
    assert result.p_chi2 == pytest.approx(expected.pvalue, rel=1e-8)
    assert result.average_ranks.sum() == pytest.approx(k * (k + 1) / 2)


def test_friedman_needs_two_blocks_and_perfect_agreement():
    with pytest.raises(ValueError, match="2 complete blocks"):
        friedman(np.array([[1.0, 2.0, 3.0]]))
    same = np.tile([3.0, 2.0, 1.0], (5, 1))  # every block ranks the methods alike: maximal chi2
    result = friedman(same)
    assert result.chi2 == pytest.approx(5 * 2) and result.p == 0.0


def test_cliques_are_maximal_runs_within_cd():
    # sorted ranks 1.0, 1.5, 2.4, 3.6 with CD 1.0: {0,1} (2.4 - 1.0 > 1), {1,2}; 3.6 alone
    assert cliques(np.array([2.4, 1.0, 3.6, 1.5]), 1.0) == [(0, 1), (1, 2)]
    assert cliques(np.array([1.0, 2.0, 3.0]), 5.0) == [(0, 2)]
    assert cliques(np.array([1.0, 3.0]), 1.0) == []


def test_distance_to_utopia_by_hand():
    # utility 0.9, 0.8, 0.7 and gap 0.2, 0.1, 0.0 -> shortfalls (0, 0.5, 1) and (1, 0.5, 0)
    d = distance_to_utopia([0.9, 0.8, 0.7], [0.2, 0.1, 0.0])
    assert d.tolist() == pytest.approx([1.0, np.sqrt(0.5), 1.0])
    # a tied axis contributes nothing; a missing value gives NaN
    assert distance_to_utopia([0.5, 0.5], [0.3, 0.1]).tolist() == [1.0, 0.0]
    d = distance_to_utopia([0.9, np.nan, 0.7], [0.2, 0.1, 0.0])
    assert d[0] == pytest.approx(1.0) and np.isnan(d[1]) and d[2] == pytest.approx(1.0)


# values on a 1e-6 grid: a difference below float resolution (1 - 1e-206 == 1) makes DTO tie exactly
_grid = st.integers(0, 10**6).map(lambda k: k / 10**6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_grid, _grid), min_size=1, max_size=12))
def test_the_dto_pick_is_on_the_pareto_front(points):
    # a dominated candidate has no smaller shortfall on either axis and a larger one on one: larger DTO
    u, g = np.array(points).T
    d = distance_to_utopia(u, g)
    assert pareto_front(u, g)[int(np.argmin(d))]
