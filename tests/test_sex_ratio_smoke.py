"""End to end on the generator with a sex-linked difficulty: every composition x strategy x seed,
the audit, the study tables and the report with the composition figure (the smoke profile)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.studies.runner import run_study
from fairmed.studies.sex_ratio import STUDY_KIND, study_strategy
from fairmed.studies.spec import load_spec, resolve_spec
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
    outcome = run_study("sex_ratio_synth", tmp_path, jobs=1)  # builtin spec, smoke profile, report
    assert len(outcome.runs) == 5 * 3 * 3 and len(outcome.executed) == 45
    auc = pd.read_parquet(tmp_path / "tables" / "composition_auc.parquet")
    assert len(auc) == 5 * 3 * 3 * 3  # composition x strategy x seed x (overall, female, male)
    assert auc["auc"].between(0, 1).all()
    assert set(outcome.results["method"]) == {"erm", "multitask", "adversarial"}
    comparison = pd.read_parquet(tmp_path / "tables" / "composition_comparison.parquet")
    assert len(comparison) == 15 and set(comparison["mark"]) <= {"<", ">", "="}
    assert comparison["config"].tolist()[:5] == ["M100", "F25M75", "F50M50", "F75M25", "F100"]
    design_t = pd.read_parquet(tmp_path / "tables" / "composition_design.parquet")
    assert (design_t["n_train"] + design_t["n_val"] == design_t["count"]).all()
    assert (design_t["n_test"] == 16).all()  # 8 per cell: 2 age bands per class and sex
    m100 = design_t[(design_t["config"] == "M100") & (design_t["group"] == "female")]
    assert (m100["count"] == 0).all()
    cells = pd.read_parquet(tmp_path / "tables" / "composition_cells.parquet")
    assert len(cells) == 3 * 5 * 8  # seed x composition x (class x sex x age band)
    per_group = cells.groupby(["seed", "config", "label", "group"])["count"].sum()
    assert per_group.to_dict() == design_t.set_index(["seed", "config", "label", "group"])["count"].to_dict()
    assert "LP cells, first seed" in outcome.report.read_text()
    # every composition of a seed was tested on the same images
    preds = outcome.predictions[outcome.predictions["split"] == "test"]
    ids = preds.groupby(["seed", "config", "method"])["id"].apply(frozenset)
    assert all(ids.loc[seed].nunique() == 1 for seed in (0, 1, 2))
    # what ran is kept on every row: the paper's alternating adversary, linear heads
    ran = preds.groupby("method")[["adv_mode", "task_head", "group_head"]].agg(lambda c: set(c))
    assert ran.loc["adversarial"].tolist() == [{"alternating"}, {"out"}, {"out"}]
    assert ran.loc["erm"].tolist() == [{""}, {"out"}, {""}]
    methods = pd.read_parquet(tmp_path / "tables" / "composition_methods.parquet").set_index("method")
    assert methods.loc["adversarial", "adv_mode"] == "alternating" and methods.loc["erm", "group_head"] == ""
    assert "What ran per strategy" in outcome.report.read_text()
    png = tmp_path / "figures" / "composition_auc_by_sex.png"
    assert png.exists() and png.stat().st_size > 10_000
    assert "AUC by training-set sex composition" in outcome.report.read_text()


def test_builtin_specs_parse_with_their_profiles():
    paper = load_spec("sex_ratio_isic")
    assert paper.source["kind"] == "isic_archive" and len(paper.source["csv"]) == 4
    assert paper.model == {
        "arch": "resnet50",
        "image_size": 384,
        "weights": "weights/resnet50-imagenet.pth",
        "head_hidden": [256],  # the paper's heads: a shared layer, then the task (and sex) outputs
        "head_shared": True,
    }
    assert paper.strategy_names()["adversarial"]["adv_mode"] == "alternating"  # the paper's optimisation
    assert paper.design.seed_list() == [0, 1, 2, 3, 4] and paper.audit.bootstrap == 1000
    settings = paper.settings().composition
    assert settings.composition_names == ["M100", "F25M75", "F50M50", "F75M25", "F100"]
    assert settings.test_fraction == 0.1
    assert len(STUDY_KIND.expand(paper)) == 5 * 3 * 5
    cpu = load_spec("sex_ratio_isic", profile="cpu")
    assert cpu.model["arch"] == "resnet18" and cpu.model["frozen"] is True
    smoke = load_spec("sex_ratio_synth")
    assert smoke.source["config"]["signal_by_sex"] == {"female": 0.3} and smoke.design.seed_list() == [
        0,
        1,
        2,
    ]
    cpu = load_spec("sex_ratio_synth", profile="cpu")
    assert cpu.source["config"]["n"] == 6000 and cpu.settings().composition.test_per_cell == 100
    modes = {m: f.get("adv_mode") for m, f in cpu.strategy_names().items() if m.startswith("adversarial")}
    assert modes == {"adversarial": "alternating", "adversarial_reversal": "reversal"}  # both, side by side
    with pytest.raises(SpecError, match="composition"):
        resolve_spec({"kind": "composition", "composition": {"shares": "half"}})
    with pytest.raises(SpecError, match="composition"):
        resolve_spec({"kind": "composition", "composition": {"share": [0.5]}})
