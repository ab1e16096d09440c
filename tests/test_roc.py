"""The one ROC computation (fairmed.metrics.roc): hand counts with ties, sklearn, and its callers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_curve

from fairmed.metrics.roc import roc_counts, roc_vertices


def test_counts_by_hand_with_ties():
    scores = np.array([0.9, 0.4, 0.4, 0.7, 0.1, 0.4])
    y = np.array([1, 0, 1, 0, 1, 0])
    tp, fp, th = roc_counts(scores, y)
    # score >= 0.9: 1 pos; >= 0.7: +1 neg; >= 0.4 (tie of three): +1 pos +2 neg; >= 0.1: +1 pos
    assert th.tolist() == [0.9, 0.7, 0.4, 0.1]
    assert tp.tolist() == [1, 1, 2, 3]
    assert fp.tolist() == [0, 1, 3, 3]
    fpr, tpr, thresholds = roc_vertices(scores, y)
    assert fpr.tolist() == [0.0, 0.0, 1 / 3, 1.0, 1.0]
    assert tpr.tolist() == [0.0, 1 / 3, 1 / 3, 2 / 3, 1.0]
    assert thresholds[0] == np.inf and thresholds[-1] == -np.inf


def test_vertices_match_sklearn():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.random(500) * 0.7 + 0.3 * y, 2)  # many ties
    fpr, tpr, th = roc_vertices(scores, y)
    ref_fpr, ref_tpr, ref_th = roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(th[1:-1], ref_th[1:-1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=40))
def test_counts_are_cumulative_and_end_at_the_class_totals(rows):
    scores = np.array([r[0] for r in rows], dtype=float) / 5
    y = np.array([r[1] for r in rows], dtype=int)
    tp, fp, th = roc_counts(scores, y)
    assert (np.diff(th) < 0).all() and len(th) == len(np.unique(scores))
    assert (np.diff(tp) >= 0).all() and (np.diff(fp) >= 0).all()
    assert tp[-1] == y.sum() and fp[-1] == len(y) - y.sum()
    for t, p, n in zip(th, tp, fp):  # every point is the count of score >= t
        assert p == (y[scores >= t] == 1).sum() and n == (y[scores >= t] == 0).sum()
