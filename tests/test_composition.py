"""LP/MILP training-set designer: the paper's Table 1, exact constraints, errors, properties."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairmed.design.composition import (
    Bound,
    InfeasibleDesign,
    Ratio,
    Term,
    design_composition,
    select_cells,
)
from fairmed.design.representation import (
    composition_name,
    paper_ratios,
    representation_sweep,
    share_ratio,
    sweep_table,
)
from fairmed.errors import FairmedError, SpecError

SHARES = {"M100": 0.0, "F25M75": 0.25, "F50M50": 0.5, "F75M25": 0.75, "F100": 1.0}
# Table 1 of "Dataset Distribution Impacts Model Fairness: Single vs. Multi-task Learning":
# malignant total (male / female); benign equals malignant in each composition.
TABLE1 = {
    "M100": (2206, 2206, 0),
    "F25M75": (2941, 2206, 735),
    "F50M50": (4412, 2206, 2206),
    "F75M25": (3235, 809, 2426),
    "F100": (2426, 0, 2426),
}
# the continuous optima behind them: the male (female) cases limit below (above) 50 % women
CONTINUOUS = {"M100": 2206, "F25M75": 2206 * 4 / 3, "F50M50": 4412, "F75M25": 2426 * 4 / 3, "F100": 2426}


def paper_cells(female_band=1213, male_band=1103, benign=np.inf) -> pd.DataFrame:
    rows = []
    for y, sex, age in itertools.product(["benign", "malignant"], ["female", "male"], ["<60", ">=60"]):
        avail = benign if y == "benign" else (female_band if sex == "female" else male_band)
        rows.append({"malignant": y, "sex": sex, "age": age, "available": avail})
    return pd.DataFrame(rows)


def paper_constraints(share: float) -> list[Ratio]:
    return [*paper_ratios(), share_ratio("sex", "female", share, ["male"], within=["malignant"])]


def test_table1_reproduced():
    designs = representation_sweep(
        paper_cells(),
        "sex",
        "female",
        list(SHARES.values()),
        others=["male"],
        within=["malignant"],
        ratios=paper_ratios(),
    )
    assert list(designs) == list(TABLE1)
    for name, (total, male, female) in TABLE1.items():
        d = designs[name]
        m = d.margins(["malignant", "sex"])
        assert (m["malignant", "male"], m["malignant", "female"]) == (male, female), name
        assert (m["benign", "male"], m["benign", "female"]) == (male, female), name
        assert d.margins("malignant").to_dict() == {"benign": total, "malignant": total}
        # what the paper prints is the rounded continuous optimum, and the counts agree with it
        assert d.reported(["malignant", "sex"]).to_dict() == m.to_dict()
        assert d.objective == pytest.approx(CONTINUOUS[name])
    table = sweep_table(designs, ["malignant", "sex"])
    assert table.loc["F75M25"].to_dict() == {
        "benign female": 2426,
        "benign male": 809,
        "malignant female": 2426,
        "malignant male": 809,
        "total": 6470,
    }


def test_table1_counts_per_cell_stay_within_one_and_ratios_nearly_hold():
    d = design_composition(paper_cells(), paper_constraints(0.75))
    c = d.counts
    assert (np.abs(c["count"] - c["solved"]) < 1).all()
    male = c[(c.malignant == "malignant") & (c.sex == "male")]
    assert sorted(male["solved"].round(6)) == [pytest.approx(2426 / 6)] * 2
    assert sorted(male["count"]) == [404, 405]  # 809 = 404 + 405: the coarse margin wins
    assert (c["count"] <= c["available"]).all()


def test_integer_designs_satisfy_every_constraint_exactly():
    # female = male / 3 and both age bands equal => male malignant a multiple of 6: 2202 <= 2206
    expected = {
        "M100": (2206, 0),
        "F25M75": (2202, 734),
        "F50M50": (2206, 2206),
        "F75M25": (808, 2424),
        "F100": (0, 2426),
    }
    for name, share in SHARES.items():
        d = design_composition(paper_cells(), paper_constraints(share), integer=True)
        m = d.margins(["malignant", "sex"])
        assert (m["malignant", "male"], m["malignant", "female"]) == expected[name]
        assert d.violations() == []
        assert (d.counts["count"] == d.counts["solved"]).all()
        assert d.integer


def test_ratio_forms():
    assert Ratio(ratio="75:25").terms == (3, 1)
    assert Ratio(ratio=0.25).terms == (1, 4)
    assert Ratio(ratio=[0, 5]).terms == (0, 1)
    assert Ratio(ratio="1:0").terms == (1, 0)
    assert Ratio(ratio="2").terms == (2, 1)
    for bad in ("a:b", "0:0", -1, [1, 2, 3], float("inf")):
        with pytest.raises((SpecError, ValueError)):
            Ratio(ratio=bad)
    r = Ratio(numerator={"sex": "female"}, denominator={"sex": "male"}, ratio="1:3", within=["label"])
    assert r.describe() == "sex=female : sex=male = 1:3 within label"
    assert Ratio.model_validate({"numerator": {"sex": "female"}, "ratio": "1:2"}).terms == (1, 2)


def test_share_ratio_and_names():
    assert share_ratio("sex", "female", 0.25, ["male"]).terms == (1, 3)
    assert share_ratio("sex", "female", 1 / 3).terms == (1, 3)  # female : all = 1 : 3
    assert share_ratio("sex", "female", 0.0, ["male"]).terms == (0, 1)
    assert share_ratio("sex", "female", 1.0, ["male"]).terms == (1, 0)
    with pytest.raises(SpecError, match="share"):
        share_ratio("sex", "female", 1.5)
    assert [composition_name({"female": s, "male": 1 - s}) for s in SHARES.values()] == list(SHARES)
    assert composition_name({"FST 1-2": 0.1, "FST 5-6": 0.9}) == "FST 1-210FST 5-690"


def test_share_of_all_cells_matches_share_of_others():
    cells = paper_cells()
    a = design_composition(cells, [*paper_ratios(), share_ratio("sex", "female", 0.25, within=["malignant"])])
    b = design_composition(cells, paper_constraints(0.25))
    assert a.counts["count"].tolist() == b.counts["count"].tolist()


def test_bounds_fix_the_size_and_objective_terms():
    cells = paper_cells(benign=5000)
    d = design_composition(cells, paper_constraints(0.5), bounds=[Bound(min=1000, max=1000)])
    assert d.total == 1000
    assert d.margins(["malignant", "sex"]).tolist() == [250, 250, 250, 250]
    # maximise the women (any linear objective): all 2426 female malignant, 2206 male malignant
    # so that benign women can match the malignant total (4632); then no benign men are left to add
    d = design_composition(cells, [paper_ratios()[0]], objective=[Term(select={"sex": "female"})])
    assert d.objective == 2426 + 4632
    assert d.margins("sex").to_dict() == {"female": 7058, "male": 2206}
    assert d.margins("malignant").to_dict() == {"benign": 4632, "malignant": 4632}


def test_largest_set_among_equally_good_designs():
    cells = pd.DataFrame({"y": ["neg", "pos"], "available": [50, 10]})
    d = design_composition(cells, [])
    assert d.counts["count"].tolist() == [50, 10]
    assert d.objective == 10


def test_infeasible_names_the_binding_constraints():
    cells = paper_cells()
    cells.loc[(cells.malignant == "malignant") & (cells.sex == "male"), "available"] = 0
    with pytest.raises(InfeasibleDesign) as err:
        design_composition(cells, paper_constraints(0.5))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (
        "composition infeasible: no design satisfies together: objective >= 1 (a non-empty design); "
        "ratio female share 0.5 [malignant]; available[malignant & male & <60] = 0; "
        "available[malignant & male & >=60] = 0"
    )
    # one band empty is enough through the age ratio
    cells = paper_cells()
    cells.loc[
        (cells.malignant == "malignant") & (cells.sex == "male") & (cells.age == "<60"), "available"
    ] = 0
    with pytest.raises(InfeasibleDesign, match=r"ratio <60 = >=60 \[malignant & male\]; .*female share 0.5"):
        design_composition(cells, paper_constraints(0.5))


def test_infeasible_bound_is_named():
    cells = paper_cells()
    with pytest.raises(
        InfeasibleDesign,
        match=r"bound 5000 <= n\(label=malignant\); available\[malignant & female & <60\] = 1213",
    ):
        design_composition(
            cells, paper_constraints(0.5), bounds=[Bound(select={"label": "malignant"}, min=5000)]
        )
    with pytest.raises(InfeasibleDesign, match="no integer design"):
        design_composition(paper_cells(1, 1), paper_constraints(0.25), integer=True)


def test_spec_errors_are_one_line():
    cells = paper_cells()
    cases = [
        (lambda: design_composition(cells.drop(columns="available")), "needs an 'available' column"),
        (lambda: design_composition(cells, [Ratio(numerator={"race": "x"})]), "unknown dimension 'race'"),
        (lambda: design_composition(cells, [Ratio(numerator={"sex": "fmale"})]), "sex has no value 'fmale'"),
        (lambda: design_composition(cells, [Ratio(within=["race"])]), "unknown 'within' dimension"),
        (lambda: design_composition(cells.assign(available=-1)), "must be a count >= 0"),
        (lambda: design_composition(pd.concat([cells, cells.head(1)])), "appears twice"),
        (lambda: design_composition(cells, label="race"), "label dimension 'race'"),
        (lambda: design_composition(cells, bounds=[Bound(min=5, max=2)]), "min 5 > max 2"),
        # benign unlimited and nothing ties it to the malignant cases
        (lambda: design_composition(cells), "grow without limit: cells benign & female & <60, "),
        (
            lambda: design_composition(cells, objective=[Term(select={"label": "benign"})]),
            "objective is unbounded",
        ),
    ]
    for call, text in cases:
        with pytest.raises(SpecError, match=text) as err:
            call()
        assert "\n" not in str(err.value)


def test_select_cells_alias_and_lists():
    cells = paper_cells()
    assert select_cells(cells, {"label": "malignant", "age": ["<60"]}).sum() == 2
    assert select_cells(cells, {}).sum() == 8


# --------------------------------------------------------------------- properties
def _closed_form(avail: np.ndarray, share: float) -> float:
    """Paper constraints in closed form: per class c, T_c <= 2 F_c / s and <= 2 M_c / (1 - s)."""
    a = avail.reshape(2, 2, 2)  # class, sex, age
    band = a.min(axis=2)  # the 1:1 age ratio: the smaller band limits both
    caps = []
    for c in range(2):
        f, m = 2 * band[c, 0], 2 * band[c, 1]
        caps.append(min(f / share if share > 0 else np.inf, m / (1 - share) if share < 1 else np.inf))
    return float(min(caps))


availability = st.lists(st.integers(0, 400), min_size=8, max_size=8)
share_st = st.sampled_from([0.0, 0.125, 0.25, 1 / 3, 0.5, 0.6, 0.75, 1.0])


def _cells(av) -> pd.DataFrame:
    cells = paper_cells()
    cells["available"] = np.asarray(av, dtype=float)
    return cells


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(av=availability, share=share_st)
def test_property_continuous_optimum_and_rounding(av, share):
    cells = _cells(av)
    best = _closed_form(cells["available"].to_numpy(), share)
    if best < 1:
        with pytest.raises(InfeasibleDesign, match="^composition infeasible: .*available") as err:
            design_composition(cells, paper_constraints(share))
        assert "\n" not in str(err.value)
        return
    d = design_composition(cells, paper_constraints(share))
    assert d.objective == pytest.approx(best, rel=1e-7)
    c = d.counts
    assert (c["count"] <= c["available"]).all() and (c["count"] >= 0).all()
    assert (np.abs(c["count"] - c["solved"]) < 1).all()
    assert d.violations("solved") == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(av=availability, share=share_st)
def test_property_integer_solution_satisfies_everything(av, share):
    cells = _cells(av)
    try:
        d = design_composition(cells, paper_constraints(share), integer=True)
    except InfeasibleDesign as err:
        msg = str(err)
        assert msg.startswith("composition infeasible: no integer design") and "\n" not in msg
        # the binding set is irreducible: it names the goal and at least one other constraint
        assert msg.count(";") >= 1
        assert _closed_form(cells["available"].to_numpy(), share) < 12  # only tiny cells can fail
        return
    c = d.counts
    assert d.violations() == []
    assert (c["count"] <= c["available"]).all()
    p, q = Ratio(ratio=(share, 1 - share)).terms
    for y in ("benign", "malignant"):
        n = c[c.malignant == y].groupby("sex")["count"].sum()
        assert q * n["female"] == p * n["male"]
        for sex in ("female", "male"):
            bands = c[(c.malignant == y) & (c.sex == sex)].set_index("age")["count"]
            assert bands["<60"] == bands[">=60"]
    assert c[c.malignant == "malignant"]["count"].sum() == c[c.malignant == "benign"]["count"].sum()
    # integer optimum is at most the continuous one
    assert d.objective <= _closed_form(cells["available"].to_numpy(), share) + 1e-6


def test_infeasible_error_is_a_fairmed_error():
    assert issubclass(InfeasibleDesign, FairmedError)


@st.composite
def random_problem(draw):
    """Random cells (class x colour x size) with random availability and random ratios."""
    keys = list(itertools.product(["neg", "pos"], ["red", "green", "blue"], ["small", "large"]))
    cells = pd.DataFrame(keys, columns=["y", "colour", "size"])
    avail = draw(st.lists(st.one_of(st.integers(0, 60), st.just(10**6)), min_size=12, max_size=12))
    cells["available"] = np.asarray(avail, dtype=float)
    options = [
        {},
        {"y": "pos"},
        {"y": "neg"},
        {"colour": "red"},
        {"colour": ["green", "blue"]},
        {"size": "small"},
        {"size": "large"},
        {"colour": "blue", "size": "large"},
    ]
    ratios = []
    for _ in range(draw(st.integers(1, 4))):
        ratios.append(
            Ratio(
                numerator=draw(st.sampled_from(options)),
                denominator=draw(st.sampled_from(options)),
                ratio=(draw(st.integers(0, 4)), draw(st.integers(1, 4))),
                within=draw(st.sampled_from([[], ["y"], ["size"]])),
            )
        )
    ratios.append(Ratio(numerator={"y": "pos"}, denominator={"y": "neg"}))  # keeps the objective bounded
    return cells, ratios


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=random_problem(), integer=st.booleans())
def test_property_random_problems(problem, integer):
    cells, ratios = problem
    try:
        d = design_composition(cells, ratios, integer=integer)
    except InfeasibleDesign as err:
        msg = str(err)
        assert msg.startswith("composition infeasible") and "\n" not in msg and "objective >= 1" in msg
        return
    c = d.counts
    assert (c["count"] <= c["available"]).all() and (c["count"] >= 0).all()
    assert d.objective >= 1 - 1e-9
    assert d.violations("solved") == []
    if integer:
        assert d.violations() == []
    else:
        assert (np.abs(c["count"] - c["solved"]) < 1).all()
