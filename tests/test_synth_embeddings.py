"""The embedding generator: determinism, attributes, and each injected mechanism measured back."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from fairmed import SpecError
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, _directions, age_bins, generate_embeddings


def test_deterministic_and_shaped():
    cfg = EmbeddingSynthConfig(n=300, dim=32)
    a, b, c = (
        generate_embeddings(cfg, seed=1),
        generate_embeddings(cfg, seed=1),
        generate_embeddings(cfg, seed=2),
    )
    assert a.embeddings.shape == (300, 32) and a.embeddings.dtype == np.float32
    assert np.array_equal(a.embeddings, b.embeddings) and a.table.equals(b.table)
    assert not np.array_equal(a.embeddings, c.embeddings)
    assert a.labels == ["no_finding"] and a.attributes == ["race", "sex", "age", "insurance"]
    assert a.class_names["no_finding"] == ["finding", "no finding"]
    assert set(a.table["race"]) <= {"White", "Black", "Asian", "Hispanic", "Other"}
    assert set(a.table["insurance"]) <= {"Medicare", "Medicaid", "Other"}
    assert a.meta["synth_embeddings"]["label_noise_by"] == {
        "insurance": {"Medicaid": 0.15},
        "race": {"Black": 0.1},
    }
    wide = generate_embeddings(EmbeddingSynthConfig(n=50, dim=1376), seed=0)
    assert wide.embeddings.shape == (50, 1376)


def test_age_bins_and_insurance_follow_age():
    assert list(age_bins(np.array([0, 19, 20, 59, 60, 79, 80, 95]))) == [
        "0-20",
        "0-20",
        "20-40",
        "40-60",
        "60-80",
        "60-80",
        "80+",
        "80+",
    ]
    t = generate_embeddings(EmbeddingSynthConfig(n=6000, dim=4), seed=0).table
    medicare_old = (t.loc[t["age"] >= 65, "insurance"] == "Medicare").mean()
    medicare_young = (t.loc[t["age"] < 65, "insurance"] == "Medicare").mean()
    assert abs(medicare_old - 0.85) < 0.03 and abs(medicare_young - 0.1) < 0.02


def test_separation_per_group_is_the_class_mean_distance_along_the_class_direction():
    cfg = EmbeddingSynthConfig(
        n=20000, dim=16, separation=3.0, separation_by={"sex": {"male": 0.5}}, label_noise_by={}
    )
    cohort = generate_embeddings(cfg, seed=0)
    proj = cohort.embeddings @ _directions(cfg)["class"]
    t = cohort.table
    for sex, expected in (("female", 3.0), ("male", 1.5)):
        m = (t["sex"] == sex).to_numpy()
        y = t["no_finding_clean"].to_numpy()
        gap = proj[m & (y == 1)].mean() - proj[m & (y == 0)].mean()
        assert abs(gap - expected) < 0.08


def test_one_sided_label_noise_creates_an_fpr_gap_for_no_finding():
    cfg = EmbeddingSynthConfig(
        n=16000, dim=16, separation_by={}, label_noise_by={"insurance": {"Medicaid": 0.5}}
    )
    cohort = generate_embeddings(cfg, seed=0)
    t = cohort.table
    flipped = t["no_finding"] != t["no_finding_clean"]
    assert (t.loc[flipped, "no_finding_clean"] == 0).all()  # only sick -> "no finding"
    sick = t["no_finding_clean"] == 0
    assert abs(flipped[sick & (t["insurance"] == "Medicaid")].mean() - 0.5) < 0.03
    assert flipped[t["insurance"] != "Medicaid"].sum() == 0
    # a model trained on the recorded labels under-diagnoses the noisy group
    train, test = np.arange(0, 10000), np.arange(10000, 16000)
    model = LogisticRegression(max_iter=500).fit(cohort.embeddings[train], cohort.y()[train])
    pred = model.predict(cohort.embeddings[test])
    tt = t.iloc[test]
    neg = (tt["no_finding_clean"] == 0).to_numpy()
    fpr = {g: pred[neg & (tt["insurance"] == g).to_numpy()].mean() for g in ("Medicaid", "Medicare", "Other")}
    assert fpr["Medicaid"] > max(fpr["Other"], fpr["Medicare"]) + 0.04


def test_spurious_direction_carries_the_label_only_in_chosen_groups():
    cfg = EmbeddingSynthConfig(
        preset="skin", n=12000, dim=24, spurious_strength_by={"fst": {"1": 1.0}}, spurious_scale=2.0
    )
    cohort = generate_embeddings(cfg, seed=0)
    assert cohort.labels == ["malignant"] and cohort.attributes == ["fst", "sex", "age"]
    proj = cohort.embeddings @ _directions(cfg)["spurious"]
    t, y = cohort.table, cohort.y()
    for fst, expected in ((1, 2.0), (3, 0.0)):
        m = (t["fst"] == fst).to_numpy()
        assert abs(proj[m & (y == 1)].mean() - proj[m & (y == 0)].mean() - expected) < 0.1


def test_attributes_are_encoded_and_prevalence_combines_in_odds():
    cfg = EmbeddingSynthConfig(
        n=20000,
        dim=32,
        prevalence=0.4,
        prevalence_by={"race": {"Black": 0.6}},
        label_noise_by={},
        attribute_encoding=1.5,
    )
    cohort = generate_embeddings(cfg, seed=0)
    t = cohort.table
    assert abs(t.loc[t["race"] == "Black", "no_finding"].mean() - 0.6) < 0.03
    assert abs(t.loc[t["race"] == "White", "no_finding"].mean() - 0.4) < 0.02
    proj = cohort.embeddings @ _directions(cfg)["race=Asian"]
    asian = (t["race"] == "Asian").to_numpy()
    assert abs(proj[asian].mean() - proj[~asian].mean() - 1.5) < 0.1


def test_bad_knobs_are_one_line_spec_errors():
    with pytest.raises(SpecError, match=r"separation_by: attribute 'fst' not in this preset"):
        EmbeddingSynthConfig(separation_by={"fst": {"6": 0.5}})
    with pytest.raises(SpecError, match=r"label_noise_by.race: unknown groups \['Martian'\]"):
        EmbeddingSynthConfig(label_noise_by={"race": {"Martian": 0.1}})
    with pytest.raises(SpecError, match=r"prevalence_by.sex: values must lie in"):
        EmbeddingSynthConfig(prevalence_by={"sex": {"male": 1.0}})
