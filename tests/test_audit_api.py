"""The audit's public API: shapes and naming of the tidy Results the report reads."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import fairmed
from fairmed.metrics import audit
from fairmed.metrics.audit import TWO_CLASS_NOTE, TwoClassWarning
from fairmed.schema import RESULT_COLUMNS


def _predictions(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "method": np.repeat(["erm", "dro"], n // 2),
            "seed": np.tile([0, 1], n // 2),
            "y_true": y,
            "y_score": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
            "sex": rng.choice(["female", "male"], n),
            "fst": rng.integers(1, 7, n),
        }
    )


def test_tidy_results_columns_and_row_kinds():
    result = audit(_predictions(), ["sex", "fst:12-56"], bootstrap=20, min_group_size=5)
    frame = result.to_frame()
    assert list(frame.columns) == ["method", "seed", *RESULT_COLUMNS, "note"]
    runs = frame[["method", "seed"]].drop_duplicates()
    assert len(runs) == 4
    assert set(frame["attribute"]) == {"overall", "sex", "fst"}
    overall = frame[frame["attribute"] == "overall"]
    assert set(overall["group"]) == {"overall"}
    gaps = result.gaps()
    assert set(gaps["group"]) == {"difference", "signed", "ratio", "worst", "std", "ser", "criterion"}
    crit = result.criteria()
    assert {"demographic_parity", "equalized_odds", "eopp0", "eopp1", "eodd"} <= set(crit["metric"])
    wide = result.by_group()
    assert wide.loc[("erm", 0, "sex", "female"), "n"] > 0
    # intervals bracket the point values of per-group rows
    groups = frame[frame["group"].isin(["female", "male"]) & (frame["metric"] == "auc")]
    assert (groups["ci_low"] <= groups["value"] + 1e-12).all()
    assert (groups["ci_high"] >= groups["value"] - 1e-12).all()


def test_top_level_and_markdown():
    result = fairmed.audit(_predictions(), ["sex"], bootstrap=0)
    assert isinstance(result, fairmed.AuditResult)
    text = result.to_markdown()
    assert "| female |" in text and "difference" in text
    assert result.to_frame()["ci_low"].isna().all()


def test_bootstrap_is_seeded():
    a = audit(_predictions(), ["sex"], bootstrap=30, seed=3).to_frame()
    b = audit(_predictions(), ["sex"], bootstrap=30, seed=3).to_frame()
    c = audit(_predictions(), ["sex"], bootstrap=30, seed=4).to_frame()
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"].fillna(0), c["ci_low"].fillna(0))


def test_small_group_warning():
    with pytest.warns(fairmed.metrics.SmallGroupWarning, match="n=.* < 1000"):
        result = audit(_predictions(), ["sex"], bootstrap=0, min_group_size=1000)
    assert result.warnings


def test_threads_do_not_change_results(monkeypatch):
    import importlib

    from fairmed.metrics.stats import replicate_chunks

    stats_module = importlib.import_module("fairmed.metrics.stats")

    chunks = []
    small = lambda n_rep, n: chunks.append(1) or replicate_chunks(n_rep, n, budget=3 * n)  # noqa: E731
    monkeypatch.setattr(stats_module, "replicate_chunks", small)
    frame = _predictions()
    one = audit(frame, ["sex"], bootstrap=40, workers=1, permutations=40)
    two = audit(frame, ["sex"], bootstrap=40, workers=2, permutations=40)
    pd.testing.assert_frame_equal(one.to_frame(), two.to_frame())
    assert chunks  # 14 chunks of 3 replicates per grouping


def _two_class_table() -> pd.DataFrame:
    """Group a: TPR 1/2, FPR 0; group b: TPR 1, FPR 0 (positive class, decisions p_1 > 0.5)."""
    p1 = [0.9, 0.2, 0.1, 0.3, 0.8, 0.7, 0.2, 0.1]
    return pd.DataFrame(
        {
            "y_true": [1, 1, 0, 0] * 2,
            "p_0": [1 - p for p in p1],
            "p_1": p1,
            "g": ["a"] * 4 + ["b"] * 4,
        }
    )


def test_two_class_probabilities_warn_and_score_gives_the_binary_forms():
    table = _two_class_table()
    with pytest.warns(TwoClassWarning, match=r"--score p_1"):
        multi = audit(table, ["g"], bootstrap=0, min_group_size=0)
    assert multi.warnings == [TWO_CLASS_NOTE]
    crit = multi.criteria().set_index("metric")["value"]
    # mean over the two classes: (|dTPR_1| + |dTNR_1|) / 2 = (1/2 + 0) / 2 for both
    assert crit["eopp0"] == crit["eopp1"] == 0.25
    assert crit["eodd"] == 0.25 and crit["eodd_signed"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", TwoClassWarning)
        binary = audit(table, ["g"], score="p_1", bootstrap=0, min_group_size=0)
    assert binary.warnings == []
    crit = binary.criteria().set_index("metric")["value"]
    assert crit["eopp1"] == 0.5 and crit["eopp0"] == 0.0 and crit["eodd"] == 0.25
    assert crit["eopp1_signed"] == -0.5 and crit["eopp0_signed"] == 0.0 and crit["eodd_signed"] == -0.25


def test_results_carry_the_reason_a_value_is_nan():
    table = pd.DataFrame(
        {
            "seed": [0] * 6 + [1] * 6,
            "y_true": [0, 0, 0, 1, 0, 1] * 2,
            "y_score": [0.1, 0.6, 0.3, 0.8, 0.4, 0.7] * 2,
            "sex": ["f", "f", "f", "m", "m", "m"] * 2,
        }
    )
    frame = audit(table, ["sex"], bootstrap=0, min_group_size=0).to_frame()
    noted = frame[frame["note"] != ""]
    assert sorted(map(tuple, noted[["seed", "group", "metric"]].to_numpy().tolist())) == [
        (s, "f", m) for s in (0, 1) for m in ("auc", "balanced_accuracy", "fnr", "tpr")
    ]
    auc_f = noted[noted["metric"] == "auc"]["note"]
    assert set(auc_f) == {"only negatives in the group: AUC needs both classes"}
    assert set(noted[noted["metric"] == "tpr"]["note"]) == {"no positive samples in the group"}
    assert set(noted[noted["metric"] == "balanced_accuracy"]["note"]) == {"undefined (zero denominator)"}
    group_rows = frame[frame["group"].isin(["f", "m"])]
    assert group_rows.loc[group_rows["note"] == "", "value"].notna().all()
