"""The benchmark study kind: statistics on hand-made tables (exact), post-processing scores, and
the smoke profile end to end through the runner and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fairmed.errors import SpecError
from fairmed.metrics.ranks import pareto_front
from fairmed.metrics.stats import mean_interval, paired_p
from fairmed.studies.benchmark import (
    BenchmarkSettings,
    add_fate,
    decision_scores,
    pareto_table,
    post_process,
    run_table,
    statements,
    summary_table,
)


# ------------------------------------------------------------------ Pareto front
def test_pareto_front_hand_made():
    # (accuracy, gap): b dominates a; c trades accuracy for gap; d duplicates c (neither dominates);
    # e is dominated by c; f has NaN (never on the front, never dominates)
    acc = [0.80, 0.85, 0.75, 0.75, 0.74, np.nan]
    gap = [0.20, 0.20, 0.05, 0.05, 0.05, 0.0]
    assert pareto_front(acc, gap).tolist() == [False, True, True, True, False, False]


def test_pareto_front_single_and_ties():
    assert pareto_front([0.5], [0.3]).tolist() == [True]
    # same accuracy: only the lowest gap survives; same gap: only the highest accuracy
    assert pareto_front([0.9, 0.9, 0.8], [0.1, 0.2, 0.1]).tolist() == [True, False, False]


def test_pareto_table_marks_front_per_config():
    summary = pd.DataFrame(
        [
            (c, m, meas, v)
            for c, rows in {
                "a": {"erm": (0.9, 0.3), "x": (0.85, 0.1), "y": (0.8, 0.2)},
                "b": {"erm": (0.7, 0.1), "x": (0.8, 0.1), "y": (0.6, 0.05)},
            }.items()
            for m, (acc, gap) in rows.items()
            for meas, v in (("accuracy", acc), ("equal_opportunity", gap))
        ],
        columns=["config", "method", "measure", "mean"],
    ).assign(ci_low=np.nan, ci_high=np.nan)
    table = pareto_table(summary, "accuracy", "equal_opportunity")
    front = table.set_index(["config", "method"])["front"]
    assert front.to_dict() == {
        ("a", "erm"): True,
        ("a", "x"): True,
        ("a", "y"): False,
        ("b", "erm"): False,
        ("b", "x"): True,
        ("b", "y"): True,
    }


# ------------------------------------------------------------------ paired tests and intervals
def test_paired_p_matches_scipy():
    a = np.array([0.81, 0.79, 0.83, 0.80, 0.78])
    b = np.array([0.78, 0.77, 0.80, 0.79, 0.74])
    assert paired_p(a, b, "ttest") == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired_p(a, b, "wilcoxon") == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
    # NaN pairs are dropped; identical runs give p = 1; fewer than two pairs give NaN
    a2, b2 = np.append(a, np.nan), np.append(b, 0.5)
    assert paired_p(a2, b2) == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired_p(a, a) == 1.0
    assert np.isnan(paired_p([0.1], [0.2]))


def test_mean_interval_is_the_t_interval():
    v = np.array([0.2, 0.25, 0.31, 0.18])
    mean, sd, lo, hi, n = mean_interval(v)
    ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (mean, n) == (pytest.approx(v.mean()), 4)
    assert sd == pytest.approx(v.std(ddof=1))
    assert (lo, hi) == (pytest.approx(ref[0]), pytest.approx(ref[1]))
    one = mean_interval(np.array([0.4, np.nan]))
    assert one[0] == 0.4 and one[4] == 1 and np.isnan(one[2])


# ------------------------------------------------------------------ FATE
def _runs():
    return pd.DataFrame(
        {
            "config": ["c"] * 6,
            "method": ["erm", "erm", "x", "x", "y", "y"],
            "seed": [0, 1, 0, 1, 0, 1],
            "accuracy": [0.80, 0.90, 0.76, 0.90, 0.88, 0.81],
            "equal_opportunity": [0.20, 0.0, 0.10, 0.05, 0.30, 0.1],
        }
    )


def test_fate_exact_values():
    out = add_fate(_runs())
    fate = out.set_index(["method", "seed"])["fate_equal_opportunity"]
    # (acc_m - acc_b) / acc_b - (gap_m - gap_b) / gap_b against ERM of the same seed
    assert fate[("x", 0)] == pytest.approx((0.76 - 0.80) / 0.80 - (0.10 - 0.20) / 0.20)  # 0.45
    assert fate[("x", 0)] == pytest.approx(0.45)
    assert fate[("y", 0)] == pytest.approx(0.1 - 0.5)
    assert fate[("erm", 0)] == 0.0
    assert np.isnan(fate[("x", 1)]) and np.isnan(fate[("erm", 1)])  # ERM gap 0: undefined


def test_summary_table_paired_against_erm():
    runs = add_fate(_runs())
    summary = summary_table(runs, "ttest")
    row = summary[(summary["method"] == "y") & (summary["measure"] == "accuracy")].iloc[0]
    a, b = np.array([0.88, 0.81]), np.array([0.80, 0.90])
    assert row["mean"] == pytest.approx(a.mean())
    assert row["delta"] == pytest.approx((a - b).mean())
    assert row["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["stars"] == "ns"
    erm = summary[(summary["method"] == "erm") & (summary["measure"] == "accuracy")].iloc[0]
    assert np.isnan(erm["p"]) and erm["stars"] == ""
    assert len(summary) == 3 * 3  # methods x (accuracy, equal_opportunity, its FATE)


def test_statements_name_narrowing_methods_and_cost():
    runs = pd.DataFrame(
        {
            "config": ["m"] * 9,
            "method": ["erm"] * 3 + ["x"] * 3 + ["y"] * 3,
            "seed": [0, 1, 2] * 3,
            "accuracy": [0.80, 0.82, 0.81, 0.78, 0.80, 0.79, 0.81, 0.83, 0.80],
            "equal_opportunity": [0.20, 0.22, 0.21, 0.05, 0.06, 0.04, 0.25, 0.30, 0.24],
        }
    )
    lines = statements(summary_table(runs), "equal_opportunity")["m"]
    assert lines[0].startswith("ERM: accuracy 0.810, equal-opportunity gap (TPR difference) 0.210")
    assert lines[1].startswith("Narrowed it significantly: x to 0.050 (p = ")
    assert "2.0 points of accuracy lost (significant)" in lines[1]
    assert lines[2].startswith("Widened it: y to 0.263")


# ------------------------------------------------------------------ run table from Results
def test_run_table_reads_overall_worst_gap_and_criteria():
    keys = {"study": "s", "config": "c", "method": "erm", "seed": 0, "split": "test"}
    rows = [
        ("overall", "overall", "accuracy", 0.8),
        ("overall", "overall", "auc", 0.9),
        ("fst", "worst", "auc", 0.7),
        ("fst", "difference", "auc", 0.25),
        ("fst", "difference", "tpr", 0.3),
        ("fst", "criterion", "equal_opportunity", 0.3),
        ("fst", "FST 1-3", "auc", 0.95),  # a group row: not a column
        ("sex", "difference", "auc", 0.01),  # another attribute: ignored
    ]
    results = pd.DataFrame(
        [{**keys, "attribute": a, "group": g, "metric": m, "value": v} for a, g, m, v in rows]
    )
    results = pd.concat([results, results.assign(split="val", value=-1.0)], ignore_index=True)
    table = run_table(results, "fst").iloc[0]
    assert table[["accuracy", "auc", "auc_worst", "auc_gap", "tpr_gap", "equal_opportunity"]].tolist() == [
        0.8,
        0.9,
        0.7,
        0.25,
        0.3,
        0.3,
    ]


# ------------------------------------------------------------------ post-processing as scores
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=40),
    st.lists(st.sampled_from(["a", "b", ""]), min_size=40, max_size=40),
    st.lists(st.floats(0.0, 1.01, allow_nan=False), min_size=3, max_size=3),
    st.floats(0.05, 0.95),
)
def test_decision_scores_reproduce_decisions_and_keep_ranks(scores, groups, cuts, tau):
    s = np.asarray(scores)
    g = np.asarray(groups[: len(s)])
    cut = dict(zip(["a", "b", ""], cuts))
    d = (s >= np.array([cut[x] for x in g])).astype(int)
    out = decision_scores(s, d, g, tau)
    assert np.array_equal(out >= tau, d.astype(bool))
    assert ((out >= 0) & (out <= 1)).all()
    for name in set(g):
        m = g == name
        order = np.argsort(s[m], kind="stable")
        assert (np.diff(out[m][order]) >= 0).all()  # monotone within the group: its AUC is unchanged


def test_decision_scores_refuse_non_threshold_decisions():
    with pytest.raises(ValueError, match="not a threshold"):
        decision_scores(np.array([0.2, 0.8]), np.array([1, 0]), np.array(["a", "a"]), 0.5)


def test_post_process_thresholds_equalise_val_tpr():
    rng = np.random.default_rng(0)
    n = 400
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    y = (rng.random(n) < 0.4).astype(int)
    shift = np.where(sex == "female", -0.15, 0.1)
    score = np.clip(0.5 + 0.25 * (2 * y - 1) + shift + rng.normal(0, 0.15, n), 0, 1)
    erm = pd.DataFrame({"split": np.repeat(["val", "test"], n // 2), "id": np.arange(n).astype(str)})
    erm = erm.assign(y_true=y, y_score=score, sex=sex)
    out = post_process(erm, "thresholds", "sex", BenchmarkSettings(thresholds_tolerance=0.02), 0.5)
    val = out[out["split"] == "val"]
    pred = val["y_score"] >= 0.5
    tpr = pred[val["y_true"] == 1].groupby(val["sex"][val["y_true"] == 1]).mean()
    raw = (val["y_score_raw"] >= 0.5)[val["y_true"] == 1].groupby(val["sex"][val["y_true"] == 1]).mean()
    assert abs(tpr["female"] - tpr["male"]) <= 0.02 + 1e-12 < abs(raw["female"] - raw["male"])
    assert np.array_equal(out["y_score_raw"], score)


def test_settings_errors_are_one_line():
    with pytest.raises(SpecError, match="benchmark.gap"):
        BenchmarkSettings(gap="nope")
    with pytest.raises(SpecError, match="benchmark.mitigations"):
        BenchmarkSettings(mitigations=["gce", "gce"])


def test_erm_family_keeps_erm_when_post_processing_cannot_fit(monkeypatch):
    import fairmed.mitigate.thresholds as thresholds
    from fairmed.errors import InputError
    from fairmed.studies.benchmark import NOT_APPLICABLE, applicability, erm_family
    from fairmed.studies.classification import load_cohort, split_parts
    from fairmed.studies.spec import resolve_spec

    def refuse(*args, **kwargs):
        raise InputError("group 'FST 4-6' has no positives: equal opportunity is undefined for it")

    monkeypatch.setattr(thresholds, "fit_thresholds", refuse)
    spec = resolve_spec(
        {
            "kind": "benchmark",
            "source": {"kind": "synth_embeddings", "config": {"preset": "skin", "n": 200, "dim": 8}},
            "groups": ["fst:123-456"],
            "design": {"stratify": ["malignant"]},
            "model": {"arch": "mlp", "hidden": 8},
            "train": {"epochs": 1},
            "benchmark": {"mitigations": ["thresholds", "reject_option"]},
        }
    )
    parts = split_parts(spec, load_cohort(spec), 0)
    family = erm_family(spec, spec.settings().benchmark, parts, 0, applicability(spec, parts, True))
    assert set(family["method"]) == {"erm", "thresholds", "reject_option"}
    row = family[family["method"] == "thresholds"]
    assert row["split"].tolist() == [NOT_APPLICABLE] and "no positives" in row["note"].iloc[0]
    assert (family.loc[family["method"] == "erm", "split"] != NOT_APPLICABLE).all()


def test_mechanism_overrides_source_model_and_train():
    from fairmed.studies.benchmark import Mechanism, expand, mechanism_spec
    from fairmed.studies.spec import resolve_spec

    spec = resolve_spec(
        {
            "kind": "benchmark",
            "source": {
                "kind": "synth_embeddings",
                "seed": 0,
                "config": {"preset": "skin", "n": 300, "dim": 8},
            },
            "groups": ["fst:123-456"],
            "model": {"arch": "mlp", "hidden": 16},
            "train": {"epochs": 3, "lr": 0.01},
            "design": {"seeds": [0, 1]},
            "benchmark": {
                "mitigations": ["scp"],
                "mechanisms": [
                    {"name": "noise", "source": {"config": {"n": 200}}},
                    {
                        "name": "images",
                        "replace_source": True,
                        "source": {"kind": "synth", "config": {"n": 100, "size": 16}},
                        "model": {"arch": "small_cnn", "image_size": 16},
                        "train": {"epochs": 1},
                    },
                ],
            },
        }
    )
    # a source-only configuration keeps its run parameters (and so its run keys) as before
    assert Mechanism(name="noise", source={"config": {"n": 200}}).run_params() == {
        "source": {"config": {"n": 200}}
    }
    runs = {(r.config, r.method, r.seed): r for r in expand(spec)}
    assert len(runs) == 2 * 2 * 2  # configurations x (erm, scp) x seeds
    merged = mechanism_spec(spec, runs[("noise", "erm", 0)].params)
    assert merged.source == {
        "kind": "synth_embeddings",
        "seed": 0,
        "config": {"preset": "skin", "n": 200, "dim": 8},
    }
    assert merged.model == {"arch": "mlp", "hidden": 16} and merged.train == {"epochs": 3, "lr": 0.01}
    images = mechanism_spec(spec, runs[("images", "scp", 1)].params)
    assert images.source == {"kind": "synth", "config": {"n": 100, "size": 16}}  # nothing of the embeddings
    assert images.model == {"arch": "small_cnn", "image_size": 16}
    assert images.train == {"epochs": 1, "lr": 0.01}
    assert spec.source["kind"] == "synth_embeddings"  # the study's spec is not changed
