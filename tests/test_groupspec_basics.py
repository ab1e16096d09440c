import re

import numpy as np
import pandas as pd
import pytest

from fairmed import Cohort, DataError, GroupSpec, SpecError


@pytest.fixture
def cohort() -> Cohort:
    df = pd.DataFrame(
        {
            "id": [f"a{i}" for i in range(8)],
            "malignant": [0, 1, 0, 1, 0, 1, 1, 0],
            "fst": [1, 2, 3, 4, 5, 6, -1, 2],
            "sex": ["F", "male", "female", "male", "", "female", "male", "female"],
            "age": [30, 65, 70, None, 40, 80, 20, 61],
        }
    )
    return Cohort(df, labels=["malignant"], attributes=["fst", "sex", "age"])


def test_fitzpatrick_light_dark_drops_middle_and_counts_it(cohort):
    a = GroupSpec.parse("fst:12-56").assign(cohort.table)
    assert list(a.groups.astype(object).fillna("-")) == [
        "FST 1-2",
        "FST 1-2",
        "-",
        "-",
        "FST 5-6",
        "FST 5-6",
        "-",
        "FST 1-2",
    ]
    assert a.counts().to_dict() == {"FST 1-2": 3, "FST 5-6": 2, "(missing, dropped)": 1, "(excluded)": 2}


def test_intersection_of_sex_and_age(cohort):
    a = GroupSpec.parse("sex*age:60").assign(cohort.table)
    assert a.counts().to_dict() == {
        "female & <60": 1,
        "female & >=60": 3,
        "male & <60": 1,
        "male & >=60": 1,
        "(missing, dropped)": 2,
    }


def test_duplicate_ids_name_the_rows():
    df = pd.DataFrame({"id": ["x", "y", "x"], "y": [0, 1, 0]})
    with pytest.raises(DataError, match=r"duplicate values x at rows 0, 2"):
        Cohort(df, labels=["y"], attributes=[])


def test_plain_fst_means_one_group_per_type(cohort):
    spec = GroupSpec.parse("fst")
    assert spec == GroupSpec.fitzpatrick("each")
    a = spec.assign(cohort.table)
    assert list(a.groups.astype(object).fillna("-")) == [
        "FST 1",
        "FST 2",
        "FST 3",
        "FST 4",
        "FST 5",
        "FST 6",
        "-",
        "FST 2",
    ]
    assert a.counts()["(missing, dropped)"] == 1


def test_whole_float_categories_print_without_point_zero():
    table = pd.DataFrame({"site": [1.0, 2.0, np.nan, 1.0, 2.5]})
    a = GroupSpec.parse("site").assign(table)
    assert list(a.groups.cat.categories) == ["1", "2", "2.5"]
    assert list(a.groups.astype(object).fillna("-")) == ["1", "2", "-", "1", "2.5"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sex+missing", {"female": 4, "male": 3, "missing": 1}),
        ("age:60+missing", {"<60": 3, ">=60": 4, "missing": 1}),
        ("fst:12-56+missing", {"FST 1-2": 3, "FST 5-6": 2, "missing": 1, "(excluded)": 2}),
        ("fst+missing", {"FST 1": 1, "FST 2": 2, **{f"FST {k}": 1 for k in range(3, 7)}, "missing": 1}),
    ],
)
def test_missing_suffix_keeps_missing_as_a_group(cohort, text, expected):
    spec = GroupSpec.parse(text)
    assert spec.missing == "group"
    assert spec.attribute == text.split(":")[0].split("+")[0]
    assert {k: v for k, v in spec.assign(cohort.table).counts().to_dict().items() if v} == expected


def test_missing_suffix_in_an_intersection_applies_to_its_part(cohort):
    spec = GroupSpec.parse("sex+missing*age:60")
    assert [s.missing for s in spec.intersect] == ["group", "drop"]
    # row 4 (sex "") is a 'missing' sex at age 40; row 3 (age None) is still dropped
    assert spec.assign(cohort.table).counts().to_dict() == {
        "female & <60": 1,
        "female & >=60": 3,
        "male & <60": 1,
        "male & >=60": 1,
        "missing & <60": 1,
        "(missing, dropped)": 1,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sex+drop", "the only suffix is '+missing'"),
        ("+missing", "expected an attribute name"),
        ("fst:78", "fst takes 'each' or groups of types 1-6 joined by '-'"),
        ("fst:12", "fst takes 'each' or groups of types 1-6"),
        ("fst:12-", "fst takes 'each' or groups of types 1-6"),
        ("fst:12-23", "group spec 'fst:12-23': fitzpatrick convention '12-23': a type appears in two groups"),
        ("fst:21-34", "write the types of a group in increasing order"),
    ],
)
def test_bad_short_forms_are_one_line(text, message):
    with pytest.raises(SpecError, match=re.escape(message)) as exc:
        GroupSpec.parse(text)
    assert "\n" not in str(exc.value)


def test_any_fitzpatrick_partition():
    spec = GroupSpec.parse("fst:12-345")
    assert spec.levels == {"FST 1-2": [1, 2], "FST 3-5": [3, 4, 5]}
    table = pd.DataFrame({"fst": [1, 2, 3, 4, 5, 6, None]})
    a = spec.assign(table)
    assert a.groups.tolist()[:5] == ["FST 1-2", "FST 1-2", "FST 3-5", "FST 3-5", "FST 3-5"]
    assert (a.n_excluded, a.n_missing) == (1, 1)  # type 6 is in no group; None is missing
    assert GroupSpec.parse("fst:1-35-6").group_names() == ["FST 1", "FST 3,5", "FST 6"]
    # the fixed conventions keep their names
    assert GroupSpec.parse("fst:12-56") == GroupSpec.fitzpatrick("12-56")
    assert GroupSpec.parse("fst:123-456").group_names() == ["FST 1-3", "FST 4-6"]
