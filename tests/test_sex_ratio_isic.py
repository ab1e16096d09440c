"""The composition study's designs on the real ISIC archive layout: the malignant exports of
../shared/data plus a benign export a user provides (here written from a seeded draw)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairmed.data.sources import load_source
from fairmed.design.cells import patient_codes
from fairmed.studies.sex_ratio import CompositionDesign, design_table, plan_seed


@pytest.fixture(scope="module")
def isic(shared_data, tmp_path_factory):
    root = shared_data / "isic-archive-malignant"
    malignant = [root / f"malignant_{s}_all_ages.csv" for s in ("female", "male")]
    template = pd.read_csv(malignant[0], nrows=1)
    rng = np.random.default_rng(7)
    n = 12_000
    benign = pd.DataFrame({c: [None] * n for c in template.columns})
    benign["isic_id"] = [f"ISIC_B{i:07d}" for i in range(n)]
    benign["benign_malignant"] = "benign"
    benign["diagnosis"] = "nevus"
    benign["sex"] = rng.choice(["female", "male"], n)
    benign["age_approx"] = (rng.integers(2, 17, n) * 5).astype(float)
    benign["patient_id"] = [f"IP_B{p:06d}" for p in rng.integers(0, 6000, n)]
    path = tmp_path_factory.mktemp("isic") / "benign_all.csv"
    benign.to_csv(path, index=False)
    return load_source({"kind": "isic_archive", "csv": [*malignant, path]})


def test_designs_on_the_archive_layout(isic):
    design = CompositionDesign(test_per_cell=100)
    plan = plan_seed(isic, design, seed=0)
    table = design_table({0: plan}, "malignant", "sex").set_index(["config", "label", "group"])
    # the <60 bands limit after 100 per cell went to the test set (and their patients' other rows):
    # men 2 x (1479 - 100 - blocked), women 2 x (1609 - 100 - blocked)
    f50 = table.loc["F50M50"]
    assert f50.loc[("malignant", "female"), "count"] == f50.loc[("malignant", "male"), "count"]
    assert 2 * (1479 - 100) - 200 <= f50.loc[("malignant", "male"), "count"] <= 2 * (1479 - 100)
    f75 = table.loc["F75M25"]
    assert f75.loc[("malignant", "female"), "count"] == pytest.approx(
        3 * f75.loc[("malignant", "male"), "count"], abs=3
    )
    for name in design.composition_names:
        sub = table.loc[name]
        assert sub.loc["malignant", "count"].tolist() == sub.loc["benign", "count"].tolist()
    # whole patients and lesions: no unit in two splits
    units = patient_codes(isic)
    for draw in plan.draws.values():
        parts = [set(units[draw.train]), set(units[draw.val]), set(units[draw.test])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(plan.test) == 800 and plan.frame.iloc[plan.test].value_counts().tolist() == [100] * 8
    assert (table["lp_seconds"] < 5).all()
