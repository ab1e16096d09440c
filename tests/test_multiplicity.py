"""Holm and Benjamini-Hochberg adjusted p-values against hand computation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fairmed.metrics.multiplicity import adjust_pvalues, benjamini_hochberg, holm


def test_holm_by_hand():
    # m = 4, sorted 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (max with 0.06), 0.06 (max(0.04, 0.06))
    p = np.array([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])


def test_bh_by_hand():
    # m = 4: 0.01*4/1 = 0.04, 0.02*4/2 = 0.04, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.02, 0.03, 0.04]), [0.04] * 4)
    # m = 3: 0.01*3 = 0.03, 0.04*3/2 = 0.06, 0.5 -> step-up keeps 0.03, 0.06, 0.5
    np.testing.assert_allclose(benjamini_hochberg([0.5, 0.01, 0.04]), [0.5, 0.03, 0.06])


def test_nan_outside_family_and_none():
    p = np.array([0.01, np.nan, 0.04])
    out = holm(p)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    np.testing.assert_allclose(adjust_pvalues(p, "none"), p)
    with pytest.raises(ValueError, match="unknown p-value adjustment 'bonf'"):
        adjust_pvalues(p, "bonf")


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.sampled_from(["holm", "bh"]))
def test_adjusted_never_below_raw(p, method):
    p = np.array(p)
    adj = adjust_pvalues(p, method)
    assert np.all(adj >= p - 1e-15)
    assert np.all(adj <= 1)
    # order preserved: a smaller raw p never gets a larger adjusted p
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)
