"""Cohort: validation messages, reshaping (subset/take/filter/concat), describe, save/load."""

import numpy as np
import pandas as pd
import pytest

from fairmed import Cohort, DataError
from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings


def small() -> Cohort:
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "y": [0, 1, 1, 0],
            "fst": [1, 6, -1, 3],
            "sex": ["F", "m", "unknown", "female"],
            "age": [30, 70, None, 61],
        }
    )
    return Cohort(df, labels="y", attributes=["fst", "sex", "age"], class_names={"y": ["neg", "pos"]})


def test_values_are_normalised():
    c = small()
    assert c.table["fst"].dtype == "Int64" and pd.isna(c.table["fst"].iloc[2])
    assert c.table["sex"].tolist() == ["female", "male", None, "female"]
    assert np.isnan(c.table["age"].iloc[2])
    assert c.n_classes() == 2 and c.y().tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("fst", 7, r"column 'fst' expects Fitzpatrick types 1-6 .*bad values 7 at rows 1"),
        ("sex", "x", r"column 'sex' expects 'female' or 'male' .*bad values x at rows 1"),
        ("age", 200, r"column 'age' expects ages in years 0-125 .*bad values 200 at rows 1"),
        ("y", 1.5, r"label column 'y' must hold class codes 0..C-1; bad values 1.5 at rows 1"),
    ],
)
def test_bad_values_name_column_and_rows(column, value, message):
    df = small().table.copy()
    df[column] = df[column].astype(object)
    df.loc[1, column] = value
    with pytest.raises(DataError, match=message):
        Cohort(df, labels="y", attributes=["fst", "sex", "age"], name="t")


def test_missing_column_and_label_beyond_class_names():
    with pytest.raises(DataError, match=r"t: missing column\(s\) \['age'\]"):
        Cohort(pd.DataFrame({"id": ["a"], "y": [0]}), labels="y", attributes=["age"], name="t")
    with pytest.raises(DataError, match="label 'y' has code 2 but only 2 class names"):
        Cohort(
            pd.DataFrame({"id": ["a"], "y": [2]}), labels="y", attributes=[], class_names={"y": ["a", "b"]}
        )


def test_subset_take_filter_concat():
    c = small()
    assert c.subset(np.array([True, False, True, False])).ids.tolist() == ["a", "c"]
    with pytest.raises(DataError, match="use Cohort.take"):
        c.subset([0, 0])
    taken = c.take(np.array([1, 1, 3, 1]))
    assert taken.ids.tolist() == ["b", "b#1", "d", "b#2"]
    assert c.filter(sex="female").ids.tolist() == ["a", "d"]
    assert c.filter(c.table["y"] == 1, fst=[6]).ids.tolist() == ["b"]
    other = Cohort(pd.DataFrame({"id": ["e"], "y": [1], "race": ["Asian"]}), labels="y", attributes=["race"])
    both = Cohort.concat([c, other])
    assert len(both) == 5 and both.attributes == ["fst", "sex", "age", "race"]
    with pytest.raises(DataError, match="duplicate values a"):
        Cohort.concat([c, c])


def test_pixels_follow_rows_and_save_load_round_trip(tmp_path):
    gen = generate(SynthConfig(n=12, size=8), seed=0)
    sub = gen.take(np.array([5, 2, 5]))
    assert np.array_equal(sub.images[0], gen.images[5]) and np.array_equal(sub.images[1], gen.images[2])
    path = gen.save(tmp_path / "gen.parquet")
    back = Cohort.load(path)
    assert np.array_equal(np.asarray(back.images), gen.images)
    assert back.meta["synth"] == gen.meta["synth"] and back.class_names == gen.class_names
    pd.testing.assert_frame_equal(back.table, gen.table)
    emb = generate_embeddings(EmbeddingSynthConfig(n=20, dim=4), seed=0)
    back_emb = Cohort.load(emb.save(tmp_path / "emb.parquet"))
    assert np.array_equal(np.asarray(back_emb.embeddings), emb.embeddings)
    with pytest.raises(DataError, match="cohort file not found"):
        Cohort.load(tmp_path / "nope.parquet")


def test_describe_counts_by_group_and_class():
    desc = small().describe(["fst:12-56", "sex"])
    rows = {(r.attribute, r.group): (r.neg, r.pos, r.n) for r in desc.itertuples()}
    assert rows == {
        ("fst", "FST 1-2"): (1, 0, 1),
        ("fst", "FST 5-6"): (0, 1, 1),
        ("fst", "(missing)"): (0, 1, 1),
        ("fst", "(excluded)"): (1, 0, 1),
        ("sex", "female"): (2, 0, 2),
        ("sex", "male"): (0, 1, 1),
        ("sex", "(missing)"): (0, 1, 1),
    }
