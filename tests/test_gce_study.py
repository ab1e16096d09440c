"""The gce_resampling study kind: smoke run end to end, paper-shaped tables, caching, report section."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from fairmed.errors import SpecError
from fairmed.studies import gce as study
from fairmed.studies.runner import run_study
from fairmed.studies.spec import BUILTIN_DIR, load_spec, resolve_spec

MAIN = ["DS", "US20", "US25", "US50", "D&U20", "D&U25", "D&U50", "Before"]
PER_ATTR = ["US25@race", "US25@sex", "US25@age", "US25@insurance", "Before"]
ROWS = ["AUC", "FPR gap race", "FPR gap sex", "FPR gap age", "FPR gap insurance"]


@dataclass
class Outcome:
    out_dir: Path
    spec: object
    runs: list
    predictions: pd.DataFrame
    results: pd.DataFrame


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`fairmed run gce_cxr_synth --profile smoke` in this process (--jobs 1), and the cache counts."""
    from fairmed.cli import cli

    out = tmp_path_factory.mktemp("gce") / "smoke"
    study.clear_cache()
    args = ["run", "gce_cxr_synth", "--profile", "smoke", "--out", str(out), "--jobs", "1", "--no-report"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # the terminal shows the paper-shaped tables, each headed by its detector and the FPR-gap definition
    for title in ("GCE detector (Table 1)", "BCE detector (Table 3)", "upsampling per attribute (Table 4)"):
        assert f"{title}; FPR gap = max - min FPR over the attribute's subgroups:" in result.output
    assert result.output.count("FPR gap insurance ") == 4  # one row per table
    spec = load_spec("gce_cxr_synth", profile="smoke")
    outcome = Outcome(
        out,
        spec,
        study.expand(spec),
        pd.read_parquet(out / "predictions.parquet"),
        pd.read_parquet(out / "results.parquet"),
    )
    return outcome, dict(study.CACHE_STATS)


def test_smoke_study_writes_the_papers_tables(smoke):
    outcome, _ = smoke
    tables = outcome.out_dir / "tables"
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        for loss in ("gce", "bce"):
            main = pd.read_parquet(tables / f"gce_table_{loss}.parquet")
            per = pd.read_parquet(tables / f"gce_per_attribute_{loss}.parquet")
            print(
                f"\n{loss.upper()} detector (Tables {1 if loss == 'gce' else 3}, {2 if loss == 'gce' else 4})"
            )
            print(main.to_string(index=False))
            print(per.to_string(index=False))
            assert list(main.columns) == ["", *MAIN] and list(main[""]) == ROWS
            assert list(per.columns) == ["", *PER_ATTR] and list(per[""]) == ROWS
            # a method's cell holds its value and the change vs Before; Before's only its value
            assert main["US25"].str.fullmatch(r"\d\.\d{3}( ± \d\.\d{3})?( \([↑↓=]\d+\.\d%\))?").all()
            assert main["Before"].str.fullmatch(r"\d\.\d{3}( ± \d\.\d{3})?").all()
    runs = outcome.runs
    assert len(runs) == 2 * 12 and {r.config for r in runs} == {"gce", "bce"}
    # ordered loss -> seed -> method, so a detector's runs follow each other
    assert [r.method for r in runs[:12]] == list(study.method_table(outcome.spec))


def test_summary_values_come_from_the_audit(smoke):
    outcome, _ = smoke
    res = outcome.results
    summary = pd.read_parquet(outcome.out_dir / "tables" / "gce_summary.parquet").set_index(
        ["config", "method", "row"]
    )
    test = res[(res["split"] == "test") & (res["config"] == "gce") & (res["method"] == "US50")]
    gap = test[
        (test["attribute"] == "insurance") & (test["group"] == "difference") & (test["metric"] == "fpr")
    ]
    fpr = test[(test["attribute"] == "insurance") & (test["metric"] == "fpr") & test["group"].isin(
        ["Medicaid", "Medicare", "Other"])]["value"]  # fmt: skip
    assert gap["value"].iloc[0] == pytest.approx(fpr.max() - fpr.min())  # the caption's max - min
    assert summary.loc[("gce", "US50", "FPR gap insurance"), "mean"] == pytest.approx(gap["value"].iloc[0])
    before = summary.loc[("gce", "Before", "AUC"), "mean"]
    us = summary.loc[("gce", "US50", "AUC")]
    assert us["change_pct"] == pytest.approx((us["mean"] - before) / before * 100)


def test_detector_trained_once_per_seed_and_loss_and_before_shared(smoke):
    outcome, stats = smoke
    # in-process: 2 detectors (gce, bce) + 1 Before model computed; every other run reuses them
    assert stats == {"misses": 3, "hits": 2 * 12 - 3}
    pred = outcome.predictions
    before = [
        pred[(pred["method"] == "Before") & (pred["config"] == c) & (pred["split"] == "test")]
        .drop(columns=["config"])
        .reset_index(drop=True)
        for c in ("gce", "bce")
    ]
    pd.testing.assert_frame_equal(*before)


def outcome_terminal_growth(out_dir) -> str:
    from fairmed.studies.gce import terminal

    return "\n".join(terminal(out_dir))


def test_decisions_and_sizes(smoke):
    outcome, _ = smoke
    tables = outcome.out_dir / "tables"
    sizes = pd.read_parquet(tables / "gce_sizes.parquet").set_index(["config", "method"])
    assert (sizes["n_after"] == sizes["n_train"] - sizes["n_removed"] + sizes["n_duplicated"]).all()
    for loss in ("gce", "bce"):
        s = sizes.loc[loss]
        assert s.loc["Before", "n_after"] == s.loc["Before", "n_train"]
        assert s.loc["DS", "n_duplicated"] == 0 and s.loc["US25", "n_removed"] == 0
        assert s.loc["US20", "n_duplicated"] <= s.loc["US25", "n_duplicated"] <= s.loc["US50", "n_duplicated"]
    dec = pd.read_parquet(tables / "gce_decisions.parquet")
    up = dec[(dec["method"] == "US50") & (dec["step"] == "up")]
    # a subgroup is upsampled exactly when its detector FPR exceeds the overall FPR; with up_of: dataset
    # the duplicates of a run total round(K x |train|) (the training set grows by exactly K)
    assert (up["applies"] == (up["fpr"] > up["overall_fpr"])).all()
    assert (up.loc[~up["applies"], "n_selected"] == 0).all()
    for (config, seed), part in up.groupby(["config", "seed"]):
        n_train = sizes.loc[(config, "US50"), "n_train"]
        assert part["n_selected"].sum() == sizes.loc[(config, "US50"), "n_duplicated"] == round(0.5 * n_train)
    caption_growth = outcome_terminal_growth(outcome.out_dir)
    assert "US50 +50.0%" in caption_growth and "US20 +20.0%" in caption_growth
    one = dec[dec["method"] == "US25@sex"]
    assert set(one["attribute"]) == {"sex"}


def test_report_section_renders_tables_and_figure(smoke):
    from fairmed.report.context import load_context
    from fairmed.report.sections.gce import gce_tables

    outcome, _ = smoke
    sections = gce_tables(load_context(outcome.out_dir))
    main, decisions = sections
    assert [p.name for p in main.figures] == ["gce_fpr_gap_by_method.png", "gce_fpr_gap_per_attribute.png"]
    assert all(p.stat().st_size > 10_000 for p in main.figures)
    captions = list(main.tables)
    assert len(captions) == 4 and all("max − min" in c for c in captions)
    assert captions[0].startswith("Table 1: GCE") and captions[2].startswith("Table 3: BCE")
    sizes = decisions.tables["Training-set size after resampling (mean over seeds)"]
    assert list(sizes["detector"]) == ["GCE", "BCE"]


def test_summary_table_by_hand():
    per_run = pd.DataFrame(
        {
            "config": "gce",
            "method": ["Before"] * 3 + ["US25"] * 3,
            "seed": [0, 1, 2] * 2,
            "row": "FPR gap sex",
            "attribute": "sex",
            "metric": "fpr_gap",
            "value": [0.10, 0.20, 0.30, 0.05, 0.10, 0.15],
            "boot_low": np.nan,
            "boot_high": np.nan,
        }
    )
    s = study.summary_table(per_run).set_index("method")
    half = 4.302652729911275 * 0.05 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n), sd of US25 = 0.05
    assert s.loc["US25", "mean"] == pytest.approx(0.10)
    assert s.loc["US25", "ci_low"] == pytest.approx(0.10 - half)
    assert s.loc["US25", "change_pct"] == pytest.approx(-50.0) and s.loc["US25", "arrow"] == "↓"
    assert s.loc["US25", "p_paired"] == pytest.approx(0.25)  # Wilcoxon, 3 pairs all one sign: 2/8
    cell = study.display_table(study.summary_table(per_run), "gce", ["US25", "Before"])
    assert cell.loc[0, "US25"] == f"0.100 ± {half:.3f} (↓50.0%)"


def test_spec_errors_are_one_line():
    raw = yaml.safe_load((BUILTIN_DIR / "gce_cxr_synth.yaml").read_text())
    for bad, match in (
        ({"resampling": {"mode": "up"}}, "set by each method"),
        ({"resampling": {"min_share": 2}}, "resampling.min_share"),
        ({"up_fractions": [0]}, "gce.up_fractions"),
    ):
        spec = {**raw, "gce": {**raw["gce"], **bad}}
        with pytest.raises(SpecError, match=match):
            resolve_spec(spec, where="x.yaml")
    spec = resolve_spec({**raw, "gce": {"attributes": ["fst"]}}, where="x.yaml")
    with pytest.raises(SpecError, match="not among the study's groups"):
        study.expand(spec)
    spec = resolve_spec({**raw, "strategies": ["reweight"]}, where="x.yaml")
    with pytest.raises(SpecError, match="strategies .* are not used"):
        study.expand(spec)


def test_builtin_specs_listed_and_valid():
    from fairmed.cli import cli

    out = CliRunner().invoke(cli, ["studies", "list"])
    assert out.exit_code == 0 and "gce_cxr_synth" in out.output and "gce_mimic_cxr" in out.output
    paper = load_spec("gce_cxr_synth", profile="paper")
    assert paper.source["config"]["dim"] == 1376 and paper.train["epochs"] == 50
    assert paper.train["batch_size"] == 32 and paper.model["hidden"] == 196
    assert len(paper.design.seed_list()) == 5


def test_mimic_layout_runs_through_the_builtin_spec(tmp_path):
    """The files docs/gce.md lists, in MIMIC's own spellings, through gce_mimic_cxr (smoke profile)."""
    rng = np.random.default_rng(0)
    n, dim = 400, 8
    dicom = [f"d{i:04d}" for i in range(n)]
    subject = [f"s{i // 2:04d}" for i in range(n)]  # two images per patient
    study_id = [f"st{i:04d}" for i in range(n)]
    y = rng.integers(0, 2, n)
    emb = rng.standard_normal((n, dim)).astype(np.float32) + y[:, None].astype(np.float32)
    np.savez(tmp_path / "embeddings.npz", ids=np.array(dicom), embeddings=emb)
    pd.DataFrame({"dicom_id": dicom, "subject_id": subject, "study_id": study_id}).to_csv(
        tmp_path / "metadata.csv", index=False
    )
    patients = sorted(set(subject))
    races = [
        "WHITE",
        "BLACK/AFRICAN AMERICAN",
        "HISPANIC/LATINO - PUERTO RICAN",
        "ASIAN - CHINESE",
        "UNKNOWN",
    ]
    pd.DataFrame(
        {
            "subject_id": patients,
            "race": rng.choice(races, len(patients)),
            "gender": rng.choice(["F", "M"], len(patients)),
            "anchor_age": rng.integers(18, 95, len(patients)),
            "insurance": rng.choice(["Medicare", "Medicaid", "Other"], len(patients)),
        }
    ).to_csv(tmp_path / "demographics.csv", index=False)
    chexpert = pd.DataFrame({"subject_id": subject, "study_id": study_id, "No Finding": y.astype(float)})
    chexpert.loc[chexpert["No Finding"] == 0, "No Finding"] = np.nan  # CheXpert: empty = not mentioned
    chexpert.to_csv(tmp_path / "chexpert.csv", index=False)
    raw = yaml.safe_load((BUILTIN_DIR / "gce_mimic_cxr.yaml").read_text())
    raw["source"].update(
        embeddings="embeddings.npz",
        tables=[
            {"path": "metadata.csv", "on": "dicom_id"},
            {"path": "demographics.csv", "on": "subject_id"},
            {"path": "chexpert.csv", "on": "study_id"},
        ],
    )
    spec = resolve_spec(raw, profile="smoke", where="gce_mimic_cxr.yaml", base_dir=tmp_path)
    outcome = run_study(spec, tmp_path / "out", jobs=1, report=False)
    assert {r.method for r in outcome.runs} == {"Before", "DS", "US25", "D&U25"}
    table = pd.read_parquet(tmp_path / "out" / "tables" / "gce_table_gce.parquet")
    assert list(table.columns) == ["", "DS", "US25", "D&U25", "Before"] and list(table[""]) == ROWS
    test = outcome.predictions[outcome.predictions["split"] == "test"]
    # whole patients stay in one split (group_by: subject_id)
    assert not set(test["id"].str[1:].astype(int) // 2) & set(
        outcome.predictions.loc[outcome.predictions["split"] == "val", "id"].str[1:].astype(int) // 2
    )


def test_builtin_synth_split_is_not_tied_to_the_generator_stream():
    """Generator seed s and split seed s draw the same numpy stream (SeedSequence(s) == default_rng(s)):
    with source seed 0 and split seed 0 the generator's sex uniforms order the split (a test split of one
    sex). The builtin's source seed (2026) is no split seed: every split holds every sex and insurance."""
    from fairmed.studies.classification import load_cohort, split_parts

    for profile in ("smoke", "cpu"):
        spec = load_spec("gce_cxr_synth", profile=profile)
        assert spec.source["seed"] not in spec.design.seed_list()
    spec = load_spec("gce_cxr_synth", profile="smoke")
    parts = split_parts(spec, load_cohort(spec), 0)
    for part in parts.values():
        assert set(part.table["sex"]) == {"female", "male"}
        assert set(part.table["insurance"]) == {"Medicaid", "Medicare", "Other"}


def test_worker_processes_give_the_in_process_predictions(tmp_path):
    """The per-process detector cache does not change results: --jobs 2 (each worker with its own cache)
    gives the Predictions of --jobs 1 bit for bit."""
    raw = yaml.safe_load((BUILTIN_DIR / "gce_cxr_synth.yaml").read_text())
    raw["gce"] = {**raw["gce"], "up_fractions": [0.25], "per_attribute": []}  # 8 runs
    spec = resolve_spec(raw, profile="smoke", where="gce_cxr_synth.yaml")
    study.clear_cache()
    one = run_study(spec, tmp_path / "one", jobs=1, report=False).predictions
    two = run_study(spec, tmp_path / "two", jobs=2, report=False).predictions
    keys = ["config", "method", "seed", "split", "id", "plan_attribute", "plan_group", "plan_step"]
    one, two = (f.sort_values(keys, na_position="first").reset_index(drop=True) for f in (one, two))
    pd.testing.assert_frame_equal(one, two)


def test_cpu_profile_runs_both_picks_and_the_decision_table_shows_small_groups():
    from fairmed.report.sections.gce import decisions_table
    from fairmed.studies.gce import config_title, expand

    cpu = load_spec("gce_cxr_synth", profile="cpu")
    configs = list(dict.fromkeys(r.config for r in expand(cpu)))
    assert configs == ["gce", "gce_highest", "bce", "bce_highest"]
    assert {r.params["pick"] for r in expand(cpu) if r.config.endswith("_highest")} == {"highest"}
    assert config_title("bce_highest") == "BCE, highest loss first" and config_title("gce") == "GCE"
    dec = pd.DataFrame(
        {
            "config": "gce",
            "method": ["US20", "US20"],
            "attribute": "race",
            "group": ["White", "American Indian/Alaska Native"],
            "step": "up",
            "n": [900.0, 12.0],
            "n_eligible": [900.0, 12.0],
            "share": [0.9, 0.012],
            "fpr": [0.1, 0.5],
            "overall_fpr": 0.2,
            "applies": [0.0, 1.0],
            "n_selected": [0.0, 20.0],
        }
    )
    table = decisions_table(dec, "gce")
    assert table["group"].tolist() == ["White", "American Indian/Alaska Native (n=12)"]
    assert table["n"].tolist() == [900, 12]
