"""Property tests of GroupSpec: every row is in exactly one group or counted as missing/excluded;
intersections agree with the crosstab of their parts; describe() loses no row."""

import numpy as np
import pandas as pd
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fairmed import Cohort, GroupSpec

FST = st.sampled_from([1, 2, 3, 4, 5, 6, -1, None])
SEX = st.sampled_from(["female", "male", "", "unknown", None])
AGE = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))


@st.composite
def tables(draw):
    n = draw(st.integers(1, 40))
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "y": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
            "fst": pd.array(draw(st.lists(FST, min_size=n, max_size=n)), dtype="Int64"),
            "sex": pd.Series(draw(st.lists(SEX, min_size=n, max_size=n)), dtype=object),
            "age": pd.Series(draw(st.lists(AGE, min_size=n, max_size=n)), dtype=float),
        }
    )


SIMPLE = st.sampled_from(
    [
        GroupSpec.fitzpatrick("12-56"),
        GroupSpec.fitzpatrick("123-456"),
        GroupSpec.fitzpatrick("each", missing="group"),
        GroupSpec.categorical("sex"),
        GroupSpec.categorical("sex", missing="group"),
        GroupSpec.age_bins((60,)),
        GroupSpec.age_bins((40, 60), missing="group"),
    ]
)


@settings(max_examples=80, deadline=None)
@given(tables(), SIMPLE)
def test_every_row_in_exactly_one_group_or_counted(table, spec):
    a = spec.assign(table)
    kept = a.kept
    assert not (kept & a.missing_mask).any()
    assert not (kept & a.excluded_mask).any()
    assert not (a.missing_mask & a.excluded_mask).any()
    assert (kept | a.missing_mask | a.excluded_mask).all()
    assert a.counts().sum() == len(table)
    # a row's group is the one its raw value says
    if spec.attribute == "fst" and spec.levels and "FST 1-2" in spec.levels:
        fst = table["fst"].to_numpy(dtype=float, na_value=np.nan)
        assert (a.groups[(fst >= 1) & (fst <= 2)].astype(str) == "FST 1-2").all()
        assert a.excluded_mask[np.isin(fst, [3, 4])].all()
    if spec.attribute == "age" and spec.edges == [60.0]:
        age = table["age"].to_numpy()
        assert (a.groups[age >= 60].astype(str) == ">=60").all()
        assert (a.groups[age < 60].astype(str) == "<60").all()


@settings(max_examples=60, deadline=None)
@given(tables(), SIMPLE, SIMPLE)
def test_intersection_counts_equal_the_crosstab(table, first, second):
    assume(first.attribute != second.attribute)
    both = GroupSpec.intersection(first, second).assign(table)
    a, b = first.assign(table), second.assign(table)
    keep = a.kept & b.kept
    assert np.array_equal(both.kept, keep)
    expected = pd.crosstab(a.groups[keep].astype(str), b.groups[keep].astype(str))
    got = both.groups.value_counts()
    for ga in expected.index:
        for gb in expected.columns:
            n = int(expected.loc[ga, gb])
            assert int(got.get(f"{ga} & {gb}", 0)) == n
    assert int(got.sum()) == int(keep.sum())
    assert both.counts().sum() == len(table)


@settings(max_examples=40, deadline=None)
@given(tables())
def test_describe_accounts_for_every_row(table):
    cohort = Cohort(table, labels=["y"], attributes=["fst", "sex", "age"], class_names={"y": ["no", "yes"]})
    desc = cohort.describe(["fst:12-56", "sex", "age:60", "sex*age:60"])
    totals = desc.groupby("attribute", sort=False)["n"].sum()
    assert (totals == len(table)).all()
    assert (desc["no"] + desc["yes"] == desc["n"]).all()


@settings(max_examples=60, deadline=None)
@given(tables(), st.sampled_from(["fst", "fst:12-56", "fst:123-456", "sex", "age:60", "age:40,60"]))
def test_missing_suffix_moves_exactly_the_missing_rows_into_their_group(table, text):
    dropped = GroupSpec.parse(text).assign(table)
    kept = GroupSpec.parse(text + "+missing").assign(table)
    groups = kept.groups.astype(object)
    assert (groups[dropped.missing_mask] == "missing").all()
    same = ~dropped.missing_mask
    assert groups[same].fillna("-").equals(dropped.groups.astype(object)[same].fillna("-"))
    assert kept.n_missing == 0 and np.array_equal(kept.excluded_mask, dropped.excluded_mask)
    counts = kept.counts()
    assert counts.get("missing", 0) == dropped.n_missing and counts.sum() == len(table)
