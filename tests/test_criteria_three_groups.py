"""Three groups, hand-derived values: the criteria take the WORST pair (a best-pair bug fails here).

Groups A, B, C with 4 positives and 4 negatives each and hard decisions:
  A: TPR 1.00, FPR 0.00 (TNR 1.00)
  B: TPR 0.50, FPR 0.25 (TNR 0.75)
  C: TPR 0.75, FPR 0.75 (TNR 0.25)
Pairs (a-b):        A-B    A-C    B-C
  |dTPR|            0.50   0.25   0.25   -> eopp1 0.50 (best pair would give 0.25)
  |dTNR|            0.25   0.75   0.50   -> eopp0 0.75 (best 0.25)
  |dTPR + dFPR|/2   0.125  0.25   0.375  -> eodd 0.375 (best 0.125)
equal opportunity = max-min TPR = 0.5; equalized odds = max(0.5, max-min FPR 0.75) = 0.75.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairmed.metrics import audit
from fairmed.metrics.fairness import eodd, eopp0, eopp1, multiclass_demographic_parity


def _group(name: str, tp: int, fp: int) -> pd.DataFrame:
    y = [1] * 4 + [0] * 4
    pred = [1] * tp + [0] * (4 - tp) + [1] * fp + [0] * (4 - fp)
    return pd.DataFrame({"y_true": y, "y_pred": pred, "grp": name})


THREE = pd.concat([_group("A", 4, 0), _group("B", 2, 1), _group("C", 3, 3)], ignore_index=True)


@pytest.mark.parametrize(("fn", "expected"), [(eopp1, 0.5), (eopp0, 0.75), (eodd, 0.375)])
def test_equal_odds_measures_take_the_worst_pair(fn, expected):
    assert fn(THREE["y_true"], THREE["y_pred"], THREE["grp"]) == pytest.approx(expected)


def test_audit_criteria_of_three_groups():
    result = audit(THREE, ["grp"], pred="y_pred", bootstrap=0, min_group_size=0)
    crit = result.criteria().set_index("metric")["value"]
    assert crit["eopp1"] == pytest.approx(0.5)
    assert crit["eopp0"] == pytest.approx(0.75)
    assert crit["eodd"] == pytest.approx(0.375)
    assert crit["equal_opportunity"] == pytest.approx(0.5)
    assert crit["equalized_odds"] == pytest.approx(0.75)
    assert "eopp1_signed" not in crit.index  # signed forms exist for exactly two groups


def test_multiclass_demographic_parity_takes_the_worst_pair():
    """Predicted-class rates A (.5, .25, .25), B (.25, .75, 0), C (0, 0, 1):
    sum_c |rate_a,c - rate_b,c| = 1.0 (A-B), 1.5 (A-C), 2.0 (B-C) -> 2.0."""
    pred = np.array([0, 0, 1, 2, 0, 1, 1, 1, 2, 2, 2, 2])
    groups = np.repeat(["A", "B", "C"], 4)
    y = np.tile([0, 1, 2, 0], 3)
    assert multiclass_demographic_parity(y, pred, groups, n_classes=3) == pytest.approx(2.0)
    frame = pd.DataFrame({"y_true": y, "y_pred": pred, "grp": groups})
    result = audit(frame, ["grp"], pred="y_pred", bootstrap=0, min_group_size=0)
    crit = result.criteria().set_index("metric")["value"]
    assert crit["dp_multiclass"] == pytest.approx(2.0)
