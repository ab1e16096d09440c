"""The channel-pruning study: the paper's metric rows, FATE, and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.mitigate.pruning import SCPConfig
from fairmed.studies.pruning import (
    METHODS,
    PruningSettings,
    group_metrics,
    history_fate,
    method_metrics,
    paper_table,
    run_pruning,
    score_distribution,
    with_fate,
    write_tables,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fate_reproduces_the_papers_scp_fairprune_number():
    # Fitzpatrick17k, SCP-FairPrune vs vanilla: F1 0.520 vs 0.510, Eodd 0.139 vs 0.182 -> 0.2559
    base = {"f1": 0.510, "eopp0": 1.0, "eopp1": 1.0, "eodd": 0.182}
    out = with_fate({"f1": 0.520, "eopp0": 1.0, "eopp1": 1.0, "eodd": 0.139}, base)
    assert out["fate_eodd"] == pytest.approx(0.2559, abs=5e-5)
    assert out["fate_eopp0"] == pytest.approx(0.01 / 0.51)


def test_group_metrics_match_sklearn_and_hand_counts():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    g = rng.integers(0, 2, 300)
    out = group_metrics(y, p, g, 4)
    for code in (0, 1):
        yy, pp = y[g == code], p[g == code]
        kw = {"average": "macro", "zero_division": 0}
        assert out[f"precision_g{code}"] == pytest.approx(precision_score(yy, pp, **kw))
        assert out[f"recall_g{code}"] == pytest.approx(recall_score(yy, pp, **kw))
        assert out[f"f1_g{code}"] == pytest.approx(f1_score(yy, pp, **kw))
    assert out["f1"] == pytest.approx((out["f1_g0"] + out["f1_g1"]) / 2)
    assert out["recall_diff"] == pytest.approx(abs(out["recall_g0"] - out["recall_g1"]))
    tpr = np.array([[np.mean(p[(g == a) & (y == c)] == c) for c in range(4)] for a in (0, 1)])
    fpr = np.array([[np.mean(p[(g == a) & (y != c)] == c) for c in range(4)] for a in (0, 1)])
    assert out["eopp1"] == pytest.approx(np.mean(np.abs(tpr[0] - tpr[1])))
    assert out["eopp0"] == pytest.approx(np.mean(np.abs(fpr[0] - fpr[1])))  # TNR = 1 - FPR
    assert out["eodd"] == pytest.approx(np.mean(np.abs(tpr[0] - tpr[1] + fpr[0] - fpr[1])) / 2)


def test_settings_validation():
    with pytest.raises(SpecError, match="vanilla"):
        PruningSettings(methods=["fairprune"])
    with pytest.raises(SpecError, match="expected"):
        PruningSettings(methods=["vanilla", "magic"])
    with pytest.raises(SpecError, match="channel_pruning.finetune.epochs"):
        PruningSettings(finetune={"epochs": "many"})


@pytest.fixture(scope="module")
def tiny_run():
    cohort = generate(SynthConfig(n=300, size=16, n_classes=3), seed=1)
    perm = np.random.default_rng(0).permutation(len(cohort))
    train, val, test = cohort.take(perm[:180]), cohort.take(perm[180:240]), cohort.take(perm[240:])
    settings = PruningSettings(
        scp=SCPConfig(ratio=0.25, max_iter=2, th_acc=1.0, th_fair=-1.0, score_batch_size=64),
        finetune={"epochs": 1, "lr": 1e-3},
        sweep_layers=[0],
        others=["reweight", "adversarial"],  # adversarial: a group head on the pruned features
    )
    run = run_pruning(
        train,
        val,
        test,
        groups="fst:123-456",
        settings=settings,
        model={"arch": "small_cnn", "image_size": 16, "channels": [8, 8]},
        config={"epochs": 4, "batch_size": 32, "lr": 3e-3, "device": "cpu"},
        seed=0,
    )
    return run


def test_end_to_end_on_the_generator(tiny_run):
    run = tiny_run
    pred = run.predictions
    assert set(pred["method"]) == {*METHODS, "reweight", "scp_reweight", "adversarial", "scp_adversarial"}
    assert set(pred["split"]) == {"val", "test"}
    assert {"p_0", "p_1", "p_2", "y_pred", "fst", "seed", "channels"} <= set(pred.columns)
    channels = pred.groupby("method")["channels"].first()
    assert channels["vanilla"] == channels["fairprune"] == 16
    assert channels["scp_vanilla"] == 16 - 2 * 2  # two iterations of 25 % of 8 channels
    h = run.history
    assert set(h["method"]) == {
        "scp_reweight",
        "scp_adversarial",
        "vanilla",
        "scp_vanilla",
        "scp_fairprune",
        "scp_vanilla layer=0",
    }
    assert list(h.loc[h["method"] == "scp_vanilla layer=0", "channels"]) == [8, 6, 4]
    assert run.privileged in ("FST 1-3", "FST 4-6")
    dist = score_distribution(run.scores)
    sizes = dist.groupby(["method", "stage"]).size()
    assert sizes[("scp_vanilla", "before")] == 8 and sizes[("scp_vanilla", "after")] == 4
    fates = history_fate(run.history)
    zero = fates[(fates["method"] == "scp_vanilla") & (fates["iteration"] == 0)]
    assert zero["test_fate_eodd"].iloc[0] == pytest.approx(0.0)


def test_tables_shaped_like_the_papers(tiny_run):
    metrics = method_metrics(tiny_run.predictions, "fst:123-456", 3)
    table = paper_table(metrics)
    assert list(table.index) == [*METHODS, "reweight", "scp_reweight", "adversarial", "scp_adversarial"]
    assert list(table.columns.get_level_values(0).unique()) == [
        "Precision",
        "Recall",
        "F1",
        "Fairness",
        "FATE",
    ]
    assert list(table["F1"].columns) == ["FST 1-3", "FST 4-6", "Avg.", "Diff."]
    assert table.loc["vanilla", ("FATE", "Eodd")] == pytest.approx(0.0)
    # the table's test-split values equal the recipe's recorded test metrics for the final models
    h = tiny_run.history
    last = h[(h["method"] == "scp_vanilla") & h["accepted"]].iloc[-1]
    assert table.loc["scp_vanilla", ("F1", "Avg.")] == pytest.approx(last["test_f1"])
    assert table.loc["scp_vanilla", ("Fairness", "Eodd")] == pytest.approx(last["test_eodd"])
    assert isinstance(metrics, pd.DataFrame) and len(metrics) == len(METHODS) + 4
    # SCP on top of another fairmed mitigation: the reweighted model's channels were pruned
    channels = tiny_run.predictions.groupby("method")["channels"].first()
    assert channels["scp_reweight"] < channels["reweight"] == channels["vanilla"]
    # ... and the adversarial model's last conv (its group head reads the narrowed features)
    assert channels["scp_adversarial"] == channels["scp_vanilla"] < channels["adversarial"]


def test_fate_is_undefined_against_a_zero_baseline():
    out = with_fate(
        {"f1": 0.3, "eopp0": 0.1, "eopp1": 0.0, "eodd": 0.2},
        {"f1": 0.3, "eopp0": 0.1, "eopp1": 0.0, "eodd": 0.0},
    )
    assert out["fate_eopp0"] == 0.0 and np.isnan(out["fate_eopp1"]) and np.isnan(out["fate_eodd"])


def test_tables_and_report_section(tiny_run, tmp_path):
    import yaml

    from fairmed.report.context import load_context
    from fairmed.report.sections.pruning import pruning_sections

    run = tiny_run
    run.predictions.to_parquet(tmp_path / "predictions.parquet")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "tiny", "kind": "channel_pruning"}))
    paths = write_tables(tmp_path, run.predictions, run.history, run.scores, "fst:123-456", 3)
    assert sorted(p.stem for p in paths) == ["pruning_history", "pruning_metrics", "pruning_scores"]
    ctx = load_context(tmp_path)
    sections = pruning_sections(ctx)
    assert [s.title for s in sections] == [
        "Fairness through channel pruning: methods compared",
        "Channel scores and pruning iterations",
    ]
    ((caption, table),) = sections[0].tables.items()
    assert list(table.index) == [
        "Vanilla",
        "FairPrune",
        "SCP-Vanilla",
        "SCP-FairPrune",
        "reweight",
        "SCP-reweight",
        "adversarial",
        "SCP-adversarial",
    ]
    assert "F1 FST 1-3" in table.columns and "FATE Eodd" in table.columns
    figures = sections[1].figures
    assert [p.name for p in figures] == ["pruning_scores.png", "pruning_fate_layer.png"]  # no pr_c sweep here
    assert all(p.stat().st_size > 1000 for p in figures)
    assert "scp_vanilla (seed 0): stopped by max_iter (2)" in sections[1].notes


def _scores(methods) -> pd.DataFrame:
    rows = [
        {"method": m, "iteration": it, "channel": c, "score": 0.1 * c + it, "layer": "features.4", "seed": 0}
        for m in methods
        for it in (0, -1)
        for c in range(4)
    ]
    return pd.DataFrame(rows)


def test_fig1_has_a_panel_per_scp_run_and_none_without():
    from fairmed.report.sections.pruning import scores_figure

    fig = scores_figure(None, _scores(["scp_vanilla", "scp_reweight", "scp_vanilla layer=0", "other"]))
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == [
        "SCP-Vanilla: features.4",
        "SCP-reweight: features.4",
        "SCP-Vanilla layer=0: features.4",
    ]
    assert scores_figure(None, _scores(["other"])) is None
    assert scores_figure(None, _scores([]).reindex(columns=["method", "iteration", "score", "layer"])) is None


def test_report_section_without_scp_scores_has_no_fig1(tiny_run, tmp_path):
    import yaml

    from fairmed.report.context import load_context
    from fairmed.report.sections.pruning import pruning_sections

    run = tiny_run
    run.predictions.to_parquet(tmp_path / "predictions.parquet")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "tiny", "kind": "channel_pruning"}))
    scores = run.scores.assign(method="fairprune")  # a score table without any SCP run
    write_tables(tmp_path, run.predictions, run.history, scores, "fst:123-456", 3)
    sections = pruning_sections(load_context(tmp_path))
    assert [p.name for p in sections[1].figures] == ["pruning_fate_layer.png"]
    assert len(sections[1].captions) == 1


def test_method_titles_follow_the_paper():
    from fairmed.report.sections.pruning import method_title

    assert method_title("vanilla") == "Vanilla"
    assert method_title("scp_fairprune") == "SCP-FairPrune"
    assert method_title("scp_vanilla pr_c=0.25") == "SCP-Vanilla pr_c=0.25"
    assert method_title("scp_reweight") == "SCP-reweight"
    assert method_title("groupdro") == "groupdro"


def test_sweep_snnl_names_and_bad_keys():
    from fairmed.studies.pruning import PruningSettings, snnl_setting

    assert snnl_setting({"distance": "cosine", "include_self": True, "temperature": 1}) == "cosine+self,T=1"
    assert snnl_setting({}) == "sqeuclidean,T=1"
    with pytest.raises(SpecError, match="'temp' is not one of"):
        PruningSettings(sweep_snnl=[{"temp": 1}])
    with pytest.raises(SpecError, match="sweep_snnl.distance"):
        PruningSettings(sweep_snnl=[{"distance": "l1"}])


def test_report_draws_the_snnl_variants_figure(tiny_run, tmp_path):
    import yaml

    from fairmed.report.context import load_context
    from fairmed.report.sections.pruning import pruning_sections

    run = tiny_run
    run.predictions.to_parquet(tmp_path / "predictions.parquet")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"name": "tiny", "kind": "channel_pruning"}))
    history = run.history.assign(sweep=run.history["sweep"].replace("layer", "snnl"))  # as a sweep_snnl run
    write_tables(tmp_path, run.predictions, history, run.scores, "fst:123-456", 3)
    sections = pruning_sections(load_context(tmp_path))
    assert "pruning_fate_snnl.png" in [p.name for p in sections[1].figures]
    assert any("authors' code's variant" in c for c in sections[1].captions)
