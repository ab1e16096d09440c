"""The composition study: per-seed designs on the generator and the female-vs-male comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from fairmed.data.synth import SynthConfig, generate
from fairmed.design.composition import Ratio, design_composition
from fairmed.design.representation import share_ratio
from fairmed.errors import SpecError
from fairmed.studies.sex_ratio import (
    CompositionDesign,
    SeedDesign,
    auc_by_group,
    cell_counts_table,
    compare_groups,
    design_table,
    plan_seed,
)


@pytest.fixture(scope="module")
def cohort():
    return generate(SynthConfig(n=900, size=16, prevalence=0.5, images_per_patient=1.5), seed=0)


def test_plan_seed_shares_test_and_keeps_ratios(cohort):
    cfg = CompositionDesign(test_per_cell=8)
    plan = plan_seed(cohort, cfg, seed=0)
    assert list(plan.designs) == ["M100", "F25M75", "F50M50", "F75M25", "F100"]
    frame = plan.frame
    assert frame.iloc[plan.test].value_counts().tolist() == [8] * 8  # balanced like F50M50
    units = np.asarray(cohort.table["patient_id"])
    for name, draw in plan.draws.items():
        assert not set(units[draw.train]) & set(units[plan.test])
        assert not set(units[draw.val]) & set(units[plan.test])
        assert not set(units[draw.train]) & set(units[draw.val])
        assert np.array_equal(draw.test, plan.test)
        m = plan.designs[name].margins(["malignant", "sex"])
        assert m["malignant"].tolist() == m["benign"].tolist()
        share = cfg.share_of(name)
        female, male = m["malignant", "female"], m["malignant", "male"]
        assert abs(female - share * (female + male)) <= 1
    table = design_table({0: plan}, "malignant", "sex")
    assert (table["n_train"] + table["n_val"] == table["count"]).all()
    assert set(table["n_test"]) == {16}
    again = plan_seed(cohort, cfg, seed=0)
    assert all(np.array_equal(again.draws[n].train, plan.draws[n].train) for n in plan.draws)


def _paper_plan() -> SeedDesign:
    """Table 1's availability (1,213 female / 1,103 male malignant per age band, benign unlimited)."""
    cells = pd.DataFrame(
        [
            {"malignant": y, "sex": s, "age": a, "available": np.inf if y == "benign" else band}
            for y in ("benign", "malignant")
            for s, band in (("female", 1213.0), ("male", 1103.0))
            for a in ("<60", ">=60")
        ]
    )
    ratios = [
        Ratio(numerator={"malignant": "malignant"}, denominator={"malignant": "benign"}),
        Ratio(numerator={"age": "<60"}, denominator={"age": ">=60"}, within=["malignant", "sex"]),
    ]
    designs = {
        name: design_composition(
            cells,
            [*ratios, share_ratio("sex", "female", share, ["male"], within=["malignant"])],
            label="malignant",
            positive="malignant",
        )
        for name, share in (("F50M50", 0.5), ("F75M25", 0.75))
    }
    return SeedDesign(None, None, None, None, designs, {})


def test_cell_counts_table_keeps_every_lp_cell():
    cells = cell_counts_table({3: _paper_plan()}, "malignant", "sex")
    assert cells.columns.tolist() == [
        "seed",
        "config",
        "label",
        "group",
        "age",
        "available",
        "solved",
        "count",
    ]
    assert len(cells) == 2 * 8 and set(cells["seed"]) == {3}
    key = ["config", "label", "group", "age"]
    c = cells.set_index(key)
    # F50M50: the male malignant cases bind (1,103 per band); everything else matches them
    f50 = c.loc["F50M50"]
    assert (f50["solved"] == 1103).all() and (f50["count"] == 1103).all()
    assert f50.loc[("malignant", "female", "<60"), "available"] == 1213
    assert np.isinf(f50.loc[("benign", "male", ">=60"), "available"])
    # F75M25: the female malignant cases bind (1,213 per band); men are a third of that per band,
    # 1213 / 3 = 404.33 in the LP, drawn as 404 + 405 (= round(2426 / 3) = 809 per class)
    f75 = c.loc["F75M25"]
    assert (f75.xs("female", level="group")["count"] == 1213).all()
    male = f75.xs("male", level="group")
    assert male["solved"].tolist() == pytest.approx([1213 / 3] * 4)
    for label in ("benign", "malignant"):
        assert sorted(male.loc[label, "count"].tolist()) == [404, 405]


def test_cell_counts_sum_to_the_design_table_and_the_draws(cohort):
    plan = plan_seed(cohort, CompositionDesign(test_per_cell=8), seed=0)
    cells = cell_counts_table({0: plan}, "malignant", "sex")
    totals = design_table({0: plan}, "malignant", "sex").set_index(["config", "label", "group"])["count"]
    summed = cells.groupby(["config", "label", "group"])["count"].sum()
    assert summed.sort_index().to_dict() == totals.sort_index().to_dict()
    assert (cells["count"] <= cells["available"]).all()
    frame = plan.frame
    for name, draw in plan.draws.items():
        drawn = frame.iloc[np.r_[draw.train, draw.val]].value_counts()
        mine = cells[cells["config"] == name].set_index(["label", "group", "age"])["count"]
        assert {k: int(v) for k, v in drawn.items()} == {k: int(v) for k, v in mine.items() if v}


def test_design_settings_validate():
    assert CompositionDesign(shares=[0.1, 0.9]).composition_names == ["F10M90", "F90M10"]
    with pytest.raises(SpecError, match="2 names for 1 shares"):
        CompositionDesign(shares=[0.5], names=["a", "b"])
    with pytest.raises(SpecError, match="not one of"):
        CompositionDesign().share_of("F33M67")


def test_plan_seed_explains_a_too_small_cell(cohort):
    with pytest.raises(SpecError, match="fewer than 500 for the test set"):
        plan_seed(cohort, CompositionDesign(test_per_cell=500), seed=0)


def _results(female: list[float], male: list[float], config="F50M50", method="erm") -> pd.DataFrame:
    rows = []
    for seed, (f, m) in enumerate(zip(female, male)):
        for attribute, group, v in (
            ("overall", "overall", (f + m) / 2),
            ("sex", "female", f),
            ("sex", "male", m),
        ):
            for split in ("val", "test"):
                rows.append(
                    {
                        "study": "s",
                        "config": config,
                        "method": method,
                        "seed": seed,
                        "split": split,
                        "attribute": attribute,
                        "group": group,
                        "metric": "auc",
                        "value": v,
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                        "n": 10,
                    }
                )
                rows.append({**rows[-1], "metric": "tpr", "value": 0.5})
    return pd.DataFrame(rows)


def test_compare_groups_matches_scipy_and_marks():
    low = [0.70, 0.71, 0.72, 0.73, 0.74]
    high = [0.80, 0.81, 0.82, 0.83, 0.84]
    results = pd.concat(
        [
            _results(low, high, "M100"),
            _results(high, low, "F100"),
            _results([0.8, 0.7, 0.75, 0.78, 0.72], [0.79, 0.71, 0.74, 0.77, 0.73], "F50M50"),
        ]
    )
    auc = auc_by_group(results)
    assert len(auc) == 3 * 5 * 3 and set(auc["group"]) == {"overall", "female", "male"}
    table = compare_groups(auc, order=["M100", "F50M50", "F100"])
    assert table["config"].tolist() == ["M100", "F50M50", "F100"]
    row = table.set_index("config")
    assert (
        row.loc["M100", "mark"] == "<" and row.loc["F100", "mark"] == ">" and row.loc["F50M50", "mark"] == "="
    )
    assert row.loc["M100", "p"] == pytest.approx(mannwhitneyu(low, high).pvalue)  # exact: 2/252
    assert row.loc["M100", "p"] == pytest.approx(2 / 252)
    assert row.loc["M100", "stars"] == "**"
    assert row.loc["M100", "female_mean"] == pytest.approx(0.72)


def test_delong_per_seed_combined_by_stouffer():
    from fairmed.metrics.delong import delong_test
    from fairmed.report.sections.sex_ratio import floor_note
    from fairmed.studies.sex_ratio import delong_by_seed

    rng = np.random.default_rng(0)
    parts = []
    for seed in (0, 1):
        for sex, shift in (("female", 0.5), ("male", 1.5)):
            y = np.r_[np.ones(20), np.zeros(20)]
            score = 1 / (1 + np.exp(-rng.normal(shift * y, 1.0)))
            keys = {"method": "erm", "config": "F50M50", "seed": seed, "split": "test", "sex": sex}
            parts.append(pd.DataFrame({"y_true": y, "y_score": score}).assign(**keys))
    preds = pd.concat(parts, ignore_index=True)
    per_seed = delong_by_seed(preds)
    assert per_seed["seed"].tolist() == [0, 1]
    first = preds[preds["seed"] == 0]
    f, m = first[first["sex"] == "female"], first[first["sex"] == "male"]
    assert per_seed.loc[0, "z"] == pytest.approx(delong_test(f.y_true, f.y_score, m.y_true, m.y_score).z)
    auc = pd.DataFrame(
        {
            "method": "erm",
            "config": "F50M50",
            "seed": [0, 0, 1, 1],
            "group": ["female", "male"] * 2,
            "auc": per_seed[["auc_a", "auc_b"]].to_numpy().ravel(),
        }
    )
    row = compare_groups(auc, delong=per_seed).iloc[0]
    assert row["z_delong"] == pytest.approx(per_seed["z"].sum() / np.sqrt(2))  # Stouffer
    assert row["p_floor"] == pytest.approx(2 / 6)  # Mann-Whitney, 2 vs 2 seeds: 2 / C(4, 2)
    note = floor_note(compare_groups(auc, delong=per_seed))
    assert note.startswith(
        " With 2 seeds per sex the smallest p-value the Mann-Whitney U test can give is 0.33"
    )
    assert "DeLong" in note
