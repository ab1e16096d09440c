"""The audit's public API: shapes and naming of the tidy Results the report reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fairmed
from fairmed.metrics import audit
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
    assert list(frame.columns) == ["method", "seed", *RESULT_COLUMNS]
    runs = frame[["method", "seed"]].drop_duplicates()
    assert len(runs) == 4
    assert set(frame["attribute"]) == {"overall", "sex", "fst"}
    overall = frame[frame["attribute"] == "overall"]
    assert set(overall["group"]) == {"overall"}
    gaps = result.gaps()
    assert set(gaps["group"]) == {"difference", "ratio", "worst", "std", "ser", "criterion"}
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

    audit_module = importlib.import_module("fairmed.metrics.audit")

    chunks = []
    small = lambda n_rep, n: chunks.append(1) or replicate_chunks(n_rep, n, budget=3 * n)  # noqa: E731
    monkeypatch.setattr(audit_module, "replicate_chunks", small)
    frame = _predictions()
    one = audit(frame, ["sex"], bootstrap=40, workers=1)
    two = audit(frame, ["sex"], bootstrap=40, workers=2)
    pd.testing.assert_frame_equal(one.to_frame(), two.to_frame())
    assert chunks  # 14 chunks of 3 replicates per grouping
