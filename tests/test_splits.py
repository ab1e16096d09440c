"""split_cohort: exact split sizes, patient-level grouping, stratification, seeded repeats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairmed.data.cohort import Cohort
from fairmed.design.splits import split_cohort
from fairmed.errors import SpecError

FR = {"train": 0.6, "val": 0.2, "test": 0.2}


def _cohort(y, patients=None, fst=None) -> Cohort:
    n = len(y)
    table = pd.DataFrame({"id": [f"s{i}" for i in range(n)], "y": y})
    attrs = []
    if patients is not None:
        table["patient_id"] = patients
    if fst is not None:
        table["fst"] = fst
        attrs.append("fst")
    return Cohort(table, labels=["y"], attributes=attrs)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_exact_sizes_when_rows_are_independent(seed):
    # 10 rows of each label, one per patient: systematic sampling gives exactly 6/2/2 per label
    c = _cohort([0] * 10 + [1] * 10)
    parts = split_cohort(c, FR, seed=seed)
    assert {k: len(v) for k, v in parts.items()} == {"train": 12, "val": 4, "test": 4}
    y = c.y()
    for k, expected in (("train", 6), ("val", 2), ("test", 2)):
        assert int((y[parts[k]] == 1).sum()) == expected


def test_patients_never_straddle_and_seed_repeats():
    patients = np.repeat(np.arange(10), 3)  # 10 patients with 3 images each
    c = _cohort([0, 0, 0, 1, 1, 1] * 5, patients=patients)
    parts = split_cohort(c, FR, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"train": 18, "val": 6, "test": 6}
    for pos in parts.values():
        assert all(len(set(patients[pos]) & set(patients[o])) == 0 for o in parts.values() if o is not pos)
    again = split_cohort(c, FR, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = split_cohort(c, FR, seed=4)
    assert any(not np.array_equal(parts[k], other[k]) for k in parts)


def test_stratify_by_label_and_attribute():
    y = [0, 1] * 20
    fst = [1] * 20 + [6] * 20
    c = _cohort(y, fst=fst)
    parts = split_cohort(c, {"train": 0.5, "test": 0.5}, seed=0, stratify=["y", "fst"])
    t = c.table
    for pos in parts.values():
        counts = t.iloc[pos].groupby(["y", "fst"]).size()
        assert counts.tolist() == [5, 5, 5, 5]


def test_missing_patient_ids_stand_alone_and_bad_inputs():
    c = _cohort([0, 1, 0, 1], patients=["a", None, "a", None])
    parts = split_cohort(c, {"train": 0.5, "test": 0.5}, seed=0)
    where = {int(p): k for k, v in parts.items() for p in v}
    assert where[0] == where[2]
    with pytest.raises(SpecError, match="sum to 1"):
        split_cohort(c, {"train": 0.5, "test": 0.4})
    with pytest.raises(SpecError, match="group_by: no column 'lesion_id'"):
        split_cohort(c, FR, group_by="lesion_id")
    with pytest.raises(SpecError, match="stratify: no column"):
        split_cohort(c, FR, stratify=["sex"])


@settings(max_examples=60, deadline=None)
@given(
    patients=st.lists(st.integers(0, 12), min_size=1, max_size=60),
    labels=st.lists(st.integers(0, 2), min_size=60, max_size=60),
    seed=st.integers(0, 2**31 - 1),
    cut=st.floats(0.05, 0.9),
)
def test_properties_disjoint_cover_no_straddle(patients, labels, seed, cut):
    n = len(patients)
    c = _cohort(labels[:n], patients=[f"p{p}" for p in patients])
    parts = split_cohort(c, {"a": cut, "b": (1 - cut) / 2, "c": (1 - cut) / 2}, seed=seed)
    allpos = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(allpos), np.arange(n))  # cover, disjoint
    owner = np.empty(n, dtype=object)
    for k, v in parts.items():
        owner[v] = k
    frame = pd.DataFrame({"p": patients, "owner": owner})
    assert (frame.groupby("p")["owner"].nunique() == 1).all()


def test_cv_folds_test_every_row_once_per_repeat_patient_level_and_stratified():
    from fairmed.design.splits import cv_split

    rng = np.random.default_rng(3)
    n = 300
    table = pd.DataFrame({"patient_id": rng.integers(0, 120, n), "y": (rng.random(n) < 0.3).astype(int)})
    partitions = []
    for seed in (0, 1):
        tested = np.zeros(n, dtype=int)
        tests = []
        for fold in range(5):
            parts = cv_split(table, 5, fold, seed=seed, val_fraction=0.25, stratify=["y"])
            assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(n))
            tested[parts["test"]] += 1
            tests.append(set(parts["test"]))
            for a, b in (("train", "test"), ("train", "val"), ("val", "test")):  # no patient in two parts
                assert not set(table["patient_id"].iloc[parts[a]]) & set(table["patient_id"].iloc[parts[b]])
            # stratified: each test fold has about a fifth of each class (patients of 1-6 rows)
            for label in (0, 1):
                share = (table["y"].iloc[parts["test"]] == label).sum() / (table["y"] == label).sum()
                assert 0.1 < share < 0.3
            # val: about a quarter of the remaining rows
            assert 0.15 < len(parts["val"]) / (n - len(parts["test"])) < 0.35
        assert (tested == 1).all()
        partitions.append(tests)
    assert partitions[0] != partitions[1]  # another repeat, another partition


def test_cv_split_rejects_bad_folds():
    from fairmed.design.splits import cv_split

    table = pd.DataFrame({"y": [0, 1, 0, 1]})
    with pytest.raises(SpecError, match="fold 3 of 3"):
        cv_split(table, 3, 3)
    with pytest.raises(SpecError, match="fold 0 of 1"):
        cv_split(table, 1, 0)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    patients=st.integers(1, 30),
    folds=st.integers(2, 7),
    seed=st.integers(0, 10_000),
    val=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_cv_split_partitions_rows_and_patients_for_any_table(n, patients, folds, seed, val):
    from fairmed.design.splits import cv_split

    rng = np.random.default_rng(seed)
    table = pd.DataFrame({"patient_id": rng.integers(0, patients, n), "y": rng.integers(0, 2, n)})
    tested = np.zeros(n, dtype=int)
    for fold in range(folds):
        parts = cv_split(table, folds, fold, seed=seed, val_fraction=val, stratify=["y"])
        assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(n))
        tested[parts["test"]] += 1
        for a, b in (("train", "test"), ("train", "val"), ("val", "test")):
            assert not set(table["patient_id"].iloc[parts[a]]) & set(table["patient_id"].iloc[parts[b]])
    assert (tested == 1).all()
