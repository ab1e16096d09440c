"""End to end on the generator with a sex-linked difficulty: every composition x strategy x seed,
the audit, the study tables and the report with the composition figure (the smoke profile)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.report.build import build_report
from fairmed.studies.sex_ratio import CompositionDesign, run_composition_study, study_strategy
from fairmed.train import fit_predict

MODEL = {"arch": "small_cnn", "image_size": 16, "channels": [8, 16]}
TRAIN = {"epochs": 2, "batch_size": 64, "lr": 3e-3, "device": "cpu", "num_threads": 1}


@pytest.fixture(scope="module")
def cohort():
    torch.set_num_threads(1)
    return generate(SynthConfig(n=600, size=16, prevalence=0.5, signal_by_sex={"female": 0.3}), seed=0)


def test_group_heads_train_on_a_one_sex_set_only_when_allowed(cohort):
    female = cohort.filter(sex="female")
    train, val, test = female.subset(np.arange(0, 150)), female.subset(np.arange(150, 200)), cohort
    with pytest.raises(SpecError, match="at least two groups"):
        fit_predict(train, val, test, model=MODEL, strategy="multitask", config=TRAIN, groups="sex", seed=0)
    for name in ("multitask", "adversarial"):
        spec = study_strategy(name)
        assert spec.single_group == "allow" and spec.name == name
        preds = fit_predict(train, val, test, model=MODEL, strategy=spec, config=TRAIN, groups="sex", seed=0)
        assert len(preds) == len(val) + len(test) and preds["y_score"].between(0, 1).all()
    assert study_strategy({"name": "adversarial", "single_group": "error"}).single_group == "error"


def test_smoke_study_end_to_end(cohort, tmp_path):
    design = CompositionDesign(test_per_cell=8)
    results = run_composition_study(
        cohort,
        design,
        tmp_path,
        seeds=(0, 1, 2),
        model=MODEL,
        train=TRAIN,
        name="sex ratio smoke",
        bootstrap=0,
    )
    auc = pd.read_parquet(tmp_path / "tables" / "composition_auc.parquet")
    assert len(auc) == 5 * 3 * 3 * 3  # composition x strategy x seed x (overall, female, male)
    assert auc["auc"].between(0, 1).all()
    assert set(results["method"]) == {"erm", "multitask", "adversarial"}
    comparison = pd.read_parquet(tmp_path / "tables" / "composition_comparison.parquet")
    assert len(comparison) == 15 and set(comparison["mark"]) <= {"<", ">", "="}
    design_t = pd.read_parquet(tmp_path / "tables" / "composition_design.parquet")
    assert (design_t["n_train"] + design_t["n_val"] == design_t["count"]).all()
    m100 = design_t[(design_t["config"] == "M100") & (design_t["group"] == "female")]
    assert (m100["count"] == 0).all()
    index = build_report(tmp_path)
    png = tmp_path / "figures" / "composition_auc_by_sex.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert "AUC by training-set sex composition" in index.read_text()
