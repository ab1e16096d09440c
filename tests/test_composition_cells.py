"""Cells of a cohort and the seeded, patient-level draws of test, design and validation rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairmed.data.cohort import Cohort
from fairmed.design.cells import (
    cell_frame,
    cell_table,
    draw_cells,
    draw_design,
    draw_test,
    patient_codes,
    set_available,
)
from fairmed.design.composition import design_composition
from fairmed.design.representation import paper_ratios, share_ratio
from fairmed.errors import DataError, SpecError


def make_cohort(n=400, seed=0, patients=150) -> Cohort:
    rng = np.random.default_rng(seed)
    pid = rng.integers(0, patients, n)
    sex = np.where(np.arange(patients) % 2 == 0, "female", "male")[pid]  # a patient has one sex
    age = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(20, 90, n))
    table = pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(n)],
            "malignant": rng.integers(0, 2, n),
            "sex": sex,
            "age": age,
            "patient_id": [f"p{p}" for p in pid],
        }
    )
    return Cohort(
        table,
        labels=["malignant"],
        attributes=["sex", "age"],
        class_names={"malignant": ["benign", "malignant"]},
    )


def test_cell_frame_and_table_count_by_hand():
    table = pd.DataFrame(
        {
            "id": list("abcdef"),
            "malignant": [1, 1, 0, 1, 0, 1],
            "sex": ["female", "male", "female", "female", None, "male"],
            "age": [30, 70, 65, np.nan, 40, 59.9],
        }
    )
    c = Cohort(
        table,
        labels=["malignant"],
        attributes=["sex", "age"],
        class_names={"malignant": ["benign", "malignant"]},
    )
    frame = cell_frame(c, ["sex", "age:60"])
    assert frame.columns.tolist() == ["malignant", "sex", "age"]
    assert frame.iloc[0].tolist() == ["malignant", "female", "<60"]
    assert frame["sex"].isna().tolist() == [False, False, False, False, True, False]
    cells = cell_table(c, ["sex", "age:60"])
    assert len(cells) == 8
    got = cells.set_index(["malignant", "sex", "age"])["available"]
    assert got["malignant", "female", "<60"] == 1
    assert got["malignant", "male", "<60"] == 1 and got["malignant", "male", ">=60"] == 1
    assert got["benign", "female", ">=60"] == 1 and got["benign", "male", "<60"] == 0
    assert got.sum() == 4  # d (no age) and e (no sex) are dropped
    excluded = cell_table(c, ["sex", "age:60"], exclude=np.array([0]))
    assert excluded["available"].sum() == 3
    more = set_available(cells, {"label": "benign", "sex": "male"}, np.inf)
    assert np.isinf(more["available"]).sum() == 2 and cells["available"].sum() == 4


def test_patient_codes_keep_patients_and_lesions_together():
    table = pd.DataFrame(
        {
            "id": list("abcde"),
            "malignant": [0] * 5,
            "sex": ["female"] * 5,
            "age": [40] * 5,
            "patient_id": ["p1", "p1", None, None, "p2"],
            "lesion_id": ["l1", "l2", "l3", "l3", None],
        }
    )
    c = Cohort(table, labels=["malignant"], attributes=["sex", "age"])
    codes = patient_codes(c)
    assert codes[0] == codes[1] and codes[2] == codes[3]
    assert len(set(codes)) == 3


def test_draw_cells_exact_quota_and_shortage():
    cell = np.array([0, 0, 0, 1, 1, -1, 1])
    units = np.arange(7)
    chosen = draw_cells(cell, np.array([2, 3]), units, 0)
    assert np.bincount(cell[chosen]).tolist() == [2, 3] and not chosen[5]
    with pytest.raises(DataError, match="cell #1 needs 4 rows but only 3"):
        draw_cells(cell, np.array([1, 4]), units, 0)


def _split(c: Cohort, share: float, seed: int, per_cell_test=5, val_fraction=0.25):
    groups = ["sex", "age:60"]
    frame = cell_frame(c, groups)
    units = patient_codes(c)
    test_counts = cell_table(c, groups).assign(count=per_cell_test)
    test, blocked = draw_test(frame, test_counts, units, seed)
    cells = cell_table(c, groups, exclude=test | blocked)
    ratios = [*paper_ratios(), share_ratio("sex", "female", share, ["male"], within=["malignant"])]
    comp = design_composition(cells, ratios)
    return frame, units, comp, draw_design(frame, comp.counts, units, seed, test, blocked, val_fraction)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), share=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]))
def test_property_draws_keep_patients_whole_and_counts_exact(seed, share):
    c = make_cohort(seed=seed % 7)
    frame, units, comp, d = _split(c, share, seed)
    train, val, test = d.train, d.val, d.test
    assert len(np.intersect1d(train, val)) == 0 and len(np.intersect1d(train, test)) == 0
    assert len(np.intersect1d(val, test)) == 0
    # no patient straddles two splits
    for a, b in ((train, val), (train, test), (val, test)):
        assert not set(units[a]) & set(units[b])
    # the test set is balanced like F50M50: 5 rows in each of the 8 cells
    assert frame.iloc[test].value_counts().tolist() == [5] * 8
    # train + val hold exactly the designed count of every cell
    drawn = frame.iloc[np.concatenate([train, val])].astype(str).value_counts()
    want = comp.counts.set_index(list(frame.columns))["count"]
    assert drawn.reindex(want.index, fill_value=0).tolist() == want.tolist()


def test_test_set_shared_across_compositions_and_seeded():
    c = make_cohort()
    _, _, _, a = _split(c, 0.25, seed=3)
    _, _, _, b = _split(c, 0.75, seed=3)
    _, _, _, again = _split(c, 0.25, seed=3)
    _, _, _, other = _split(c, 0.25, seed=4)
    assert np.array_equal(a.test, b.test)
    assert np.array_equal(a.train, again.train) and np.array_equal(a.val, again.val)
    assert not np.array_equal(a.test, other.test)
    assert len(a.val) > 0 and len(a.train) > 3 * len(a.val) * 0.8


def test_draw_design_validates_fraction():
    c = make_cohort()
    frame = cell_frame(c, ["sex", "age:60"])
    counts = cell_table(c, ["sex", "age:60"]).assign(count=1)
    none = np.zeros(len(c), dtype=bool)
    with pytest.raises(SpecError, match="val_fraction"):
        draw_design(frame, counts, patient_codes(c), 0, none, none, val_fraction=1.0)
