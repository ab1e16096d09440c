"""The benchmark study end to end: the builtin smoke profile through run_study and the report, and
a method that cannot apply (SCP on an MLP) listed with its reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairmed.studies.benchmark import label_of, methods_of
from fairmed.studies.runner import run_study
from fairmed.studies.spec import load_spec, resolve_spec

ALL = set(methods_of(load_spec("benchmark", profile="smoke")))  # the smoke profile's methods


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    mp = pytest.MonkeyPatch()
    mp.setenv("FAIRMED_CACHE", str(root / "cache"))
    try:
        outcome = run_study("benchmark", root / "out", profile="smoke", jobs=1)
        outcome.cache = root / "cache" / "benchmark"
        yield outcome
    finally:
        mp.undo()


def test_smoke_every_method_has_results(smoke):
    results = smoke.results
    assert set(results["method"]) == ALL
    test = results[(results["split"] == "test") & (results["attribute"] == "overall")]
    per = test[test["metric"] == "accuracy"].groupby("method")["value"].count()
    assert (per == 2).all() and set(per.index) == ALL  # 2 seeds each
    assert (
        not (smoke.out_dir / "tables" / "benchmark_notes.parquet").exists()
        or pd.read_parquet(smoke.out_dir / "tables" / "benchmark_notes.parquet").empty
    )  # a small CNN: every method applies


def test_smoke_tables_shapes(smoke):
    tables = smoke.out_dir / "tables"
    runs = pd.read_parquet(tables / "benchmark_runs.parquet")
    assert len(runs) == len(ALL) * 2 and set(runs["config"]) == {"contrast"}
    for col in ("accuracy", "auc", "auc_worst", "tpr_gap", "equal_opportunity", "fate_equal_opportunity"):
        assert col in runs.columns
    assert (runs.loc[runs["method"] == "erm", "fate_equal_opportunity"].dropna() == 0).all()
    summary = pd.read_parquet(tables / "benchmark_summary.parquet")
    measures = [c for c in runs.columns if c not in ("config", "method", "seed", "attribute")]
    assert len(summary) == len(ALL) * len(measures)
    assert (summary["n"] == 2).all() and summary.loc[summary["method"] != "erm", "p"].notna().any()
    pareto = pd.read_parquet(tables / "benchmark_pareto.parquet")
    assert len(pareto) == len(ALL) and pareto["front"].any()
    acc = summary[summary["measure"] == "accuracy"].set_index("method")["mean"]
    assert np.allclose(pareto.set_index("method")["accuracy"], acc.reindex(pareto["method"]))


def test_smoke_post_processing_uses_the_erm_model(smoke):
    # the ERM family (erm, thresholds, reject option, fairprune, scp) was computed once per seed
    assert len(list(smoke.cache.glob("*.parquet"))) == 2
    pred = smoke.predictions
    erm = pred[(pred["method"] == "erm") & (pred["split"] == "test")].set_index(["seed", "id"])["y_score"]
    for method in ("thresholds", "reject_option", "calibrated_eqodds"):
        rows = pred[(pred["method"] == method) & (pred["split"] == "test")].set_index(["seed", "id"])
        assert np.allclose(rows["y_score_raw"], erm.reindex(rows.index))
    # calibrated equalized odds: a row keeps its ERM score or takes a base rate of its group
    rows = pred[(pred["method"] == "calibrated_eqodds") & (pred["split"] == "test")]
    moved = rows[rows["y_score"] != rows["y_score_raw"]]
    assert moved.groupby(["seed", "fst"])["y_score"].nunique().le(1).all()


def test_smoke_selection_and_ranks(smoke):
    tables = smoke.out_dir / "tables"
    selection = pd.read_parquet(tables / "benchmark_selection.parquet")
    assert set(selection["rule"]) == {"auc", "worst_auc", "gap", "dto"}
    assert set(selection["candidates"]) == {"(any)"}  # no strategy has variants in the smoke profile
    assert (selection["seeds"] == 2).all() and selection["test_auc"].notna().all()
    front = pd.read_parquet(tables / "benchmark_front.parquet")
    assert set(front["method"]) == ALL and front["val_front"].between(0, 1).all()
    ranks = pd.read_parquet(tables / "benchmark_ranks.parquet")
    friedman = pd.read_parquet(tables / "benchmark_friedman.parquet")
    assert set(friedman["measure"]) == {"accuracy", "auc_worst", "equal_opportunity"}
    assert (friedman["unit"] == "seed").all() and (friedman["n"] == 2).all()  # one mechanism: seeds
    per = ranks.groupby("measure")["average_rank"].sum()
    k = len(ALL)
    assert np.allclose(per, k * (k + 1) / 2)  # ranks 1..k in every block


def test_smoke_report_section(smoke):
    html = (smoke.out_dir / "index.html").read_text(encoding="utf-8")
    assert "Benchmark: accuracy against the fairness gap" in html and "Benchmark: contrast" in html
    assert "Benchmark: ranks across mechanisms" in html and "Model selection on validation" in html
    assert (smoke.out_dir / "figures" / "benchmark_cd.png").stat().st_size > 10_000
    assert (smoke.out_dir / "figures" / "benchmark_tradeoff.png").stat().st_size > 10_000
    assert label_of("equal_opportunity") in html


def test_not_applicable_methods_are_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRMED_CACHE", str(tmp_path / "cache"))
    spec = resolve_spec(
        {
            "name": "bm_mlp",
            "kind": "benchmark",
            "source": {
                "kind": "synth_embeddings",
                "seed": 0,
                "config": {"preset": "skin", "n": 400, "dim": 8},
            },
            "groups": ["fst:123-456"],
            "design": {"seeds": [0, 1], "stratify": ["malignant"]},
            "model": {"arch": "mlp", "hidden": 8},
            "strategies": ["erm"],
            "train": {"epochs": 2},
            "audit": {"bootstrap": 0, "min_group_size": 5},
            "benchmark": {
                "mitigations": ["thresholds", "fairprune", "scp"],
                "mechanisms": [{"name": "a"}, {"name": "b", "source": {"seed": 1}}],
            },
        }
    )
    out = run_study(spec, tmp_path / "out", jobs=2, report=True)  # two processes share the ERM cache
    assert (
        len(list((tmp_path / "cache" / "benchmark").glob("*.parquet"))) == 4
    )  # one ERM per seed and mechanism
    notes = pd.read_parquet(out.out_dir / "tables" / "benchmark_notes.parquet")
    assert notes[["config", "method", "note"]].values.tolist() == [
        [c, "scp", "not applicable to arch mlp: SCP prunes conv channels"] for c in ("a", "b")
    ]
    assert set(out.results["method"]) == {"erm", "thresholds", "fairprune"}
    html = (out.out_dir / "index.html").read_text(encoding="utf-8")
    assert "not applicable to arch mlp" in html
    # the summary pairs each method of mechanism b with b's ERM, and b's ERM is no mitigation of a's
    from fairmed.report.summary import report_summary

    lines = report_summary(out.out_dir)
    named = [line for line in lines if "b · thresholds" in line or "b · fairprune" in line]
    assert named and all("(against b · erm)" in line for line in named)
    assert not any(line.startswith("b · erm") or ", b · erm" in line for line in lines)


def test_builtin_profiles_validate():
    for profile in ("smoke", "cpu", "paper"):
        spec = load_spec("benchmark", profile=profile)
        assert spec.kind == "benchmark"
    cpu = load_spec("benchmark", profile="cpu").settings().benchmark
    assert [m.name for m in cpu.mechanisms] == [
        "representation",
        "contrast",
        "label_noise",
        "spurious",
        "images_contrast",
    ]
    # the image configuration runs its own source and CNN, so SCP applies there
    images = cpu.mechanisms[-1]
    assert images.replace_source and images.source["kind"] == "synth"
    assert images.model["arch"] == "small_cnn"


def test_applicability_reasons():
    from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
    from fairmed.studies.benchmark import applicability

    cohort = generate_embeddings(EmbeddingSynthConfig(preset="cxr", n=300, dim=8), seed=0)
    spec = resolve_spec(
        {
            "kind": "benchmark",
            "source": {"kind": "synth_embeddings", "config": {"preset": "cxr", "n": 300, "dim": 8}},
            "groups": ["race"],
            "model": {"arch": "mlp"},
        }
    )
    reasons = applicability(spec, {"train": cohort}, binary=False)
    assert reasons["erm"] == reasons["reweight"] == ""
    assert reasons["gce"] == reasons["thresholds"] == "needs a binary label (one score per sample)"
    assert reasons["fairprune"] == "needs exactly two groups (privileged, unprivileged), found 5"
    assert reasons["scp"].startswith("needs exactly two groups")
    frozen = resolve_spec(
        {**spec.model_dump(), "groups": ["sex"], "model": {"arch": "resnet18", "frozen": True}}
    )
    reasons = applicability(frozen, {"train": cohort}, binary=True)
    assert reasons["scp"] == "not applicable to arch resnet18 (frozen features): SCP prunes conv channels"
    assert reasons["fairprune"] == reasons["thresholds"] == ""
