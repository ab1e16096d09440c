"""The LP cells built from the real ISIC archive malignant exports (../shared/data)."""

from __future__ import annotations

import pytest

from fairmed.data.cohort import Cohort
from fairmed.data.sources import load_source
from fairmed.design.cells import cell_table, set_available
from fairmed.design.representation import paper_ratios, representation_sweep, sweep_table


@pytest.fixture(scope="module")
def isic(shared_data) -> Cohort:
    root = shared_data / "isic-archive-malignant"
    csv = [root / f"malignant_{s}_all_ages.csv" for s in ("female", "male")]
    return load_source({"kind": "isic_archive", "csv": csv})


def test_cells_from_the_archive_exports(isic):
    cells = cell_table(isic, ["sex", "age:60"])
    got = cells.set_index(["malignant", "sex", "age"])["available"].to_dict()
    # SOURCE.md: female <60 1609, >=60 1893 (15 missing); male <60 1479, >=60 3571 (29 missing)
    assert got == {
        ("benign", "female", "<60"): 0,
        ("benign", "female", ">=60"): 0,
        ("benign", "male", "<60"): 0,
        ("benign", "male", ">=60"): 0,
        ("malignant", "female", "<60"): 1609,
        ("malignant", "female", ">=60"): 1893,
        ("malignant", "male", "<60"): 1479,
        ("malignant", "male", ">=60"): 3571,
    }


def test_sweep_on_the_archive_with_user_benign_availability(isic):
    cells = set_available(cell_table(isic, ["sex", "age:60"]), {"label": "benign"}, 20_000)
    designs = representation_sweep(
        cells, "sex", "female", [0, 0.25, 0.5, 0.75, 1], within=["malignant"], ratios=paper_ratios()
    )
    table = sweep_table(designs, ["malignant", "sex"])
    # the <60 bands limit: men 2 x 1479 = 2958, women 2 x 1609 = 3218; F75M25 men 3218 / 3 = 1072.67
    expected = {
        "M100": (0, 2958),
        "F25M75": (986, 2958),
        "F50M50": (2958, 2958),
        "F75M25": (3218, 1073),
        "F100": (3218, 0),
    }
    for name, (female, male) in expected.items():
        row = table.loc[name]
        assert (row["malignant female"], row["malignant male"]) == (female, male), name
        assert (row["benign female"], row["benign male"]) == (female, male), name
        assert row["total"] == 2 * (female + male)
    # the benign export of the paper is not here: with too few benign, benign limits instead
    scarce = set_available(cells, {"label": "benign"}, 500)
    d = representation_sweep(scarce, "sex", "female", [0.5], within=["malignant"], ratios=paper_ratios())
    assert d["F50M50"].margins(["malignant", "sex"]).tolist() == [1000, 1000, 1000, 1000]
