import pandas as pd
import pytest

from fairmed import Cohort, DataError, GroupSpec


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
