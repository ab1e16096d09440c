"""End to end on the generator with a sex-linked difficulty: every composition x strategy x seed,
the audit, the study tables and the report with the composition figure (the smoke profile)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.report.build import build_report
from fairmed.studies.sex_ratio import BUILTIN, run_spec, study_from_spec, study_strategy
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


def test_smoke_study_end_to_end(tmp_path):
    torch.set_num_threads(1)
    results = run_spec(BUILTIN / "sex_ratio_synth.yaml", tmp_path)  # the builtin spec, smoke profile
    auc = pd.read_parquet(tmp_path / "tables" / "composition_auc.parquet")
    assert len(auc) == 5 * 3 * 3 * 3  # composition x strategy x seed x (overall, female, male)
    assert auc["auc"].between(0, 1).all()
    assert set(results["method"]) == {"erm", "multitask", "adversarial"}
    comparison = pd.read_parquet(tmp_path / "tables" / "composition_comparison.parquet")
    assert len(comparison) == 15 and set(comparison["mark"]) <= {"<", ">", "="}
    assert comparison["config"].tolist()[:5] == ["M100", "F25M75", "F50M50", "F75M25", "F100"]
    design_t = pd.read_parquet(tmp_path / "tables" / "composition_design.parquet")
    assert (design_t["n_train"] + design_t["n_val"] == design_t["count"]).all()
    assert (design_t["n_test"] == 16).all()  # 8 per cell: 2 age bands per class and sex
    m100 = design_t[(design_t["config"] == "M100") & (design_t["group"] == "female")]
    assert (m100["count"] == 0).all()
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert spec["kind"] == "composition" and spec["profile"] == "smoke"
    assert spec["strategies"][2]["adv_lambda"] == 5.0
    index = build_report(tmp_path)
    png = tmp_path / "figures" / "composition_auc_by_sex.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert "AUC by training-set sex composition" in index.read_text()


def test_builtin_specs_parse_with_their_profiles():
    spec = yaml.safe_load((BUILTIN / "sex_ratio_isic.yaml").read_text())
    source, paper = study_from_spec(spec)
    assert source["kind"] == "isic_archive" and len(source["csv"]) == 4
    assert paper.model == {"arch": "resnet50", "image_size": 384, "weights": "weights/resnet50-imagenet.pth"}
    assert paper.seeds == [0, 1, 2, 3, 4] and paper.bootstrap == 1000 and paper.train["lr"] == 1e-4
    assert paper.design.composition_names == ["M100", "F25M75", "F50M50", "F75M25", "F100"]
    assert paper.design.test_fraction == 0.1
    _, cpu = study_from_spec(spec, "cpu")
    assert cpu.model["arch"] == "resnet18" and cpu.model["frozen"] is True
    smoke_spec = yaml.safe_load((BUILTIN / "sex_ratio_synth.yaml").read_text())
    source, smoke = study_from_spec(smoke_spec)
    assert source["config"]["signal_by_sex"] == {"female": 0.3} and smoke.seeds == [0, 1, 2]
    source, cpu = study_from_spec(smoke_spec, "cpu")
    assert source["config"]["n"] == 6000 and cpu.design.test_per_cell == 100
    with pytest.raises(SpecError, match="expected 'composition'"):
        study_from_spec({**spec, "kind": "channel_pruning"})
    with pytest.raises(SpecError, match="profile 'huge'"):
        study_from_spec(spec, "huge")
    with pytest.raises(SpecError, match="composition spec design.shares"):
        study_from_spec({**spec, "design": {"shares": "half"}})
