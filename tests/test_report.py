"""build_report on a realistic study folder and an audit folder: structure, self-containment,
the summary's numbers, and the pieces behind the figures checked against peers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairmed.cli import main
from fairmed.report import build_report
from fairmed.report.context import load_context
from fairmed.report.core.curves import GRID, reliability, roc_points
from fairmed.report.core.fairness import verdict
from fairmed.report.sections import Section, register_section
from fairmed.report.summary import find
from fairmed.report.tidy import gap_rows, split_results
from test_report_data import (
    CORE_SECTIONS,
    check_self_contained,
    make_predictions,
    make_results,
    parse,
    write_study,
)

KIND = "report_test_kind"
STUDY_SECTIONS = [*CORE_SECTIONS, "comparison", "study-specific-check"]


@register_section(KIND)
def _study_specific(ctx):
    table = ctx.tables["per_seed"]
    return [Section("Study-specific check", intro="Registered by the test.", tables={"per seed": table})]


@pytest.fixture(scope="module")
def data():
    predictions = make_predictions(n=300, methods={"erm": 0.0, "groupdro": 0.6})
    return predictions, make_results(predictions, bootstrap=100)


@pytest.fixture(scope="module")
def study(tmp_path_factory, data) -> Path:
    predictions, results = data
    out = write_study(tmp_path_factory.mktemp("study"), predictions, results, kind=KIND)
    (out / "tables").mkdir()
    per_seed = results[(results["metric"] == "auc") & (results["attribute"] == "overall")]
    per_seed[["method", "seed", "value"]].to_parquet(out / "tables" / "per_seed.parquet")
    build_report(out)
    return out


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory, data) -> Path:
    """An external model's predictions through `fairmed audit --report DIR` (which builds the report)."""
    predictions, _ = data
    one = predictions[
        (predictions["method"] == "erm") & (predictions["seed"] == 0) & (predictions["split"] == "test")
    ]
    base = tmp_path_factory.mktemp("audit")
    csv = base / "external.csv"
    one.drop(columns=["study", "config", "method", "seed", "split"]).to_csv(csv, index=False)
    out = base / "report"
    args = [
        "audit",
        str(csv),
        "--attr",
        "sex",
        "--attr",
        "fst:12-56",
        "--bootstrap",
        "100",
        "--report",
        str(out),
    ]
    args += ["--min-group-size", "20"]
    main(args)
    return out


def test_audit_report_never_imports_torch(audit_dir):
    """`fairmed audit --report` works on a CSV from any model: no torch, even with study sections around."""
    code = (
        "import sys; from fairmed.report import build_report; "
        f"build_report({str(audit_dir)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_study_report_structure(study):
    page = check_self_contained(study)
    assert page.sections == STUDY_SECTIONS
    text = (study / "index.html").read_text(encoding="utf-8")
    assert "The study spec (spec.yaml)" in text and "Fairness criteria at tolerance 0.05" in text
    # the star legend states the sex-ratio paper's thresholds wherever stars are drawn
    key = "the sex-ratio paper&#x27;s convention: **** p&lt;=1e-4, *** p&lt;=1e-3, ** p&lt;=1e-2, * p&lt;=0.1"
    assert text.count(key) >= 1 + len([p for p in (study / "figures").glob("box_*.png")])
    names = {p.stem for p in (study / "figures").glob("*.png")}
    assert {"composition", "attribute_histogram", "forest_fst", "gaps", "roc_fst", "calibration_sex"} <= names
    assert {"box_fst_auc", "box_sex_auc", "box_overall_auc"} <= names


def test_audit_report_has_no_spec_or_comparison(audit_dir):
    page = check_self_contained(audit_dir)
    assert page.sections == CORE_SECTIONS
    text = (audit_dir / "index.html").read_text(encoding="utf-8")
    assert "Audit settings (audit.json)" in text and "spec.yaml" not in text
    # audit.json records grouping names only ("fst"); the report still finds the FST 1-2 / 5-6 bins
    names = {p.stem for p in (audit_dir / "figures").glob("*.png")}
    assert names == {
        "composition",
        "attribute_histogram",
        "forest_fst",
        "forest_sex",
        "gaps",
        "calibration_fst",
        "calibration_sex",
        "roc_fst",
        "roc_sex",
    }


def test_summary_numbers_come_from_results(study, data):
    _, results = data
    split = split_results(results, hint=data[0])
    finding = find(split)
    test = results[results["split"] == "test"]
    gaps = gap_rows(split)
    erm = gaps[(gaps["method"] == "erm") & gaps["metric"].isin(["auc", "tpr", "fpr", "accuracy"])]
    by_gap = erm.groupby(["attribute", "metric"])["value"].mean()
    assert (finding.attribute, finding.metric) == by_gap.idxmax()
    assert finding.attribute == "fst"  # the injected skin-type gap
    assert finding.gap == pytest.approx(by_gap.max())
    groups = split.groups
    rows = groups[
        (groups["attribute"] == "fst") & (groups["metric"] == finding.metric) & (groups["method"] == "erm")
    ]
    means = rows.groupby("group")["value"].mean()
    assert finding.worst_group == "FST 5-6" == means.idxmin()
    assert finding.worst_value == pytest.approx(means.min())
    assert finding.mitigations, "the fixture's mitigations close part of the gap"
    first = finding.mitigations[0]
    changed = (
        first.narrowed + first.reversed
    )  # a gap closed past zero is "reversed" (the other group worse off)
    largest = [c for c in changed if (c.attribute, c.metric) == ("fst", finding.metric)]
    per_method = gaps[(gaps["attribute"] == "fst") & (gaps["metric"] == finding.metric)]
    per_method = per_method.groupby("method")["value"].mean()
    assert largest[0].after == pytest.approx(per_method[first.name])
    overall = test[test["attribute"] == "overall"].groupby(["metric", "method"])["value"].mean()
    assert [c.metric for c in first.cost] == ["accuracy", "auc"]
    for c in first.cost:
        assert (c.before, c.after) == pytest.approx(
            (overall[(c.metric, "erm")], overall[(c.metric, first.name)])
        )
    text = (study / "index.html").read_text(encoding="utf-8")
    assert f"{first.name} narrowed the fst" in text
    assert f"a gap of {finding.gap:.3f}" in text


def test_verdicts():
    assert verdict(0.03, 0.01, 0.04, 0.05) == "holds"
    assert verdict(0.10, 0.07, 0.20, 0.05) == "fails"
    assert verdict(0.03, 0.01, 0.08, 0.05) == "uncertain"
    assert verdict(0.07, 0.02, 0.12, 0.05) == "uncertain"
    assert verdict(0.07, 0.05, 0.12, 0.05) == "uncertain"  # the lower bound touches the tolerance
    assert verdict(0.05, 0.02, 0.05, 0.05) == "holds"
    assert verdict(0.03, np.nan, np.nan, 0.05) == "holds"


def test_roc_points_match_sklearn():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    score = np.round(rng.random(400) * 0.6 + 0.4 * y, 2)  # rounded: many ties
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    x, ours = roc_points(y, score)
    np.testing.assert_allclose(x, GRID)
    np.testing.assert_allclose(ours, np.interp(GRID, fpr, tpr), atol=1e-12)


def test_reliability_matches_sklearn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(4)
    prob = rng.random(2000)
    y = (rng.random(2000) < prob**1.5).astype(int)
    observed, predicted = calibration_curve(y, prob, n_bins=10, strategy="uniform")
    mean_p, mean_y = reliability(y, prob)
    np.testing.assert_allclose(mean_p, predicted, atol=1e-12)
    np.testing.assert_allclose(mean_y, observed, atol=1e-12)


def test_group_colours_are_the_same_in_every_figure(study):
    ctx = load_context(study)
    colours = {g: ctx.color(g) for g in ("FST 1-2", "FST 5-6", "female", "male", "overall")}
    assert len({colours["FST 1-2"], colours["FST 5-6"]}) == 2 and colours["overall"] == "#000000"
    # the SVG of every figure draws a group only in its colour: check the forest and ROC of fst
    for name in ("forest_fst", "roc_fst", "box_fst_auc"):
        svg = (study / "figures" / f"{name}.svg").read_text().lower()
        assert colours["FST 1-2"].lower() in svg and colours["FST 5-6"].lower() in svg


def test_cli_report_rebuild(audit_dir, capsys):
    """`fairmed report` rebuilds in place: summary on stdout, only the report's own stale figures go."""
    figures = audit_dir / "figures"
    (figures / "old_report_figure.png").write_bytes(b"stale")
    (figures / "drawn_by_the_study.png").write_bytes(b"keep")
    manifest = figures / ".report-figures.json"
    manifest.write_text(json.dumps([*json.loads(manifest.read_text()), "old_report_figure"]))
    (audit_dir / "index.html").unlink()
    main(["report", str(audit_dir), "--tolerance", "0.1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("- The largest gap is the fst ")
    assert out[-1] == f"report: {audit_dir / 'index.html'}"
    assert "Fairness criteria at tolerance 0.1" in (audit_dir / "index.html").read_text(encoding="utf-8")
    assert not (figures / "old_report_figure.png").exists()
    assert (figures / "drawn_by_the_study.png").read_bytes() == b"keep"
    (figures / "drawn_by_the_study.png").unlink()
    with pytest.raises(SystemExit) as bad:
        main(["report", str(audit_dir), "--tolerance", "5"])
    assert bad.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --tolerance must be between 0 and 1 (a gap in metric units), got 5.0"]


def test_undefined_values_do_not_break_the_report(tmp_path, data):
    """A group whose AUC is undefined (a single class) is NaN in Results: drawn as missing, not a crash."""
    predictions, results = data
    keep = ["erm", "groupdro"]
    predictions = predictions[predictions["method"].isin(keep) & (predictions["seed"] < 2)]
    results = results[results["method"].isin(keep) & (results["seed"] < 2)].copy()
    fst = (results["attribute"] == "fst") & (results["metric"] == "auc")
    results.loc[fst & (results["group"] == "FST 5-6"), ["value", "ci_low", "ci_high"]] = np.nan
    results.loc[fst & (results["group"] == "difference"), ["value", "ci_low", "ci_high"]] = np.nan
    out = write_study(tmp_path / "nan", predictions, results)
    build_report(out)
    split = split_results(results, hint=predictions)
    finding = find(split)
    assert (finding.attribute, finding.metric) != ("fst", "auc")  # the undefined gap is never "largest"
    assert np.isfinite(finding.gap) and np.isfinite(finding.worst_value)
    assert parse(out / "index.html").sections[0] == "summary"


def test_missing_inputs_one_line_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path)])
    assert exit_info.value.code == 2


def test_predictions_only_folder_still_renders(tmp_path, data):
    predictions, _ = data
    out = tmp_path / "preds"
    out.mkdir()
    predictions.head(50).to_parquet(out / "predictions.parquet")
    build_report(out)
    page = parse(out / "index.html")
    assert page.sections[0] == "summary"
    assert "nothing to summarise" in (out / "index.html").read_text(encoding="utf-8")


def test_figures_are_sized_by_content(study):
    from PIL import Image

    sizes = {p.stem: Image.open(p).size for p in (study / "figures").glob("*.png")}
    # three methods x two groups x three seeds need a taller forest than one row per group
    assert sizes["forest_fst"][1] > 600
    assert all(w <= 2100 for w, _ in sizes.values()), sizes
    assert isinstance(pd.__version__, str)


def _multiclass_predictions(rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for k, method in enumerate(("vanilla", "scp_fairprune")):
        for seed in range(3):
            n = 240
            fst = rng.integers(1, 7, n)
            y = rng.integers(0, 4, n)
            logits = rng.normal(0, 1, (n, 4))
            logits[np.arange(n), y] += np.where(fst >= 4, 1.0 + 0.8 * k, 2.0)
            p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            frame = pd.DataFrame({"method": method, "seed": seed, "split": "test", "y_true": y, "fst": fst})
            frames.append(frame.assign(**{f"p_{c}": p[:, c] for c in range(4)}))
    return pd.concat(frames, ignore_index=True)


def _value_predictions(rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for dark, config in ((0.0, "A"), (1.0, "C")):
        for seed in range(3):
            n = 200
            fst = np.where(rng.random(n) < 0.5, 1, 6)
            mse = rng.gamma(4, 0.01, n) * np.where(fst == 6, 1.4 - 0.4 * dark, 1.0)
            frames.append(pd.DataFrame({"config": config, "seed": seed, "fst": fst, "recon_mse": mse}))
    return pd.concat(frames, ignore_index=True)


def test_multiclass_and_value_studies_render(tmp_path):
    from fairmed.metrics import audit

    rng = np.random.default_rng(7)
    cases = {
        "multi": (_multiclass_predictions(rng), {}, "pruning"),
        "values": (_value_predictions(rng), {"values": ["recon_mse"]}, "vae_fairness"),
    }
    figures = {}
    for name, (predictions, extra, kind) in cases.items():
        out = tmp_path / name
        results = audit(
            predictions, attrs=["fst:123-456" if name == "multi" else "fst:12-56"], bootstrap=50, **extra
        )
        write_study(out, predictions, results.to_frame(), kind=kind)
        build_report(out)
        check_self_contained(out)
        figures[name] = {p.stem for p in (out / "figures").glob("*.png")}
    # multi-class: no ROC (binary only); calibration as top-label confidence; Eodd etc. in the table
    assert figures["multi"] == {
        "composition",
        "attribute_histogram",
        "forest_fst",
        "gaps",
        "calibration_fst",
        "box_fst_auc_ovr",
        "box_fst_f1_macro",  # the summary's largest gap gets its box plot too
        "box_overall_auc_ovr",
    }
    text = (tmp_path / "multi" / "index.html").read_text(encoding="utf-8")
    assert "Eodd" in text and "Fairness criteria at tolerance" in text
    assert "Whole-population AUC and accuracy per configuration" in text  # the cost, in accuracy too
    # per-sample values: no curves, no criteria; the lead metric is the mean MSE (lower is better)
    assert figures["values"] == {
        "composition",
        "attribute_histogram",
        "forest_fst",
        "gaps",
        "box_fst_recon_mse_mean",
        "box_overall_recon_mse_mean",
    }
    text = (tmp_path / "values" / "index.html").read_text(encoding="utf-8")
    assert "Gaps between groups</h2>" in text and "mean MSE" in text and "Fairness criteria at" not in text


def test_config_by_method_studies_facet_by_method(tmp_path):
    """Compositions x strategies: one row of box panels per strategy, x = composition."""
    from PIL import Image

    from fairmed.report.core.comparison import _facets

    assert _facets(["config", "method"]) == ("method", ["config"])
    assert _facets(["method"]) == (None, ["method"])
    frames = []
    for i, config in enumerate(("F0", "F100")):
        p = make_predictions(n=150, seed=i, methods={"erm": 0.0, "adversarial": 0.5}, seeds=(0, 1))
        frames.append(p[p["split"] == "test"].assign(config=config))
    predictions = pd.concat(frames, ignore_index=True)
    out = write_study(
        tmp_path / "grid", predictions, make_results(predictions, bootstrap=20, min_group_size=10)
    )
    build_report(out)
    width, height = Image.open(out / "figures" / "box_fst_auc.png").size
    assert height > 0.8 * width  # two rows (erm, adversarial) of [per-group, gap] panels
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "Baseline: F0 within each method." in text


def test_many_classes_are_compacted_in_the_composition_table():
    from fairmed.report.core.overview import MAX_CLASSES, _compact

    classes = {f"condition {i}": [i, 2 * i, 1] for i in range(20)}
    summary = pd.DataFrame(
        {"attribute": ["fst", "fst", "sex"], "group": ["FST 1-3", "FST 4-6", "female"], **classes}
    )
    summary["n"] = summary[list(classes)].sum(axis=1)
    out = _compact(summary)
    top = [
        f"condition {i}" for i in range(19, 19 - MAX_CLASSES, -1)
    ]  # the most frequent in the first attribute
    assert list(out.columns) == ["attribute", "group", *top, "other (12 classes)", "n"]
    assert (out.drop(columns=["attribute", "group", "n"]).sum(axis=1) == summary["n"]).all()


def test_gaps_from_results_without_gap_rows():
    """Results from another tool may lack gap rows: the difference comes from the per-group values."""
    results = pd.DataFrame(
        {
            "method": ["erm"] * 5,
            "attribute": ["sex", "sex", "overall", "fst", "fst"],
            "group": ["female", "male", "overall", "FST 1-2", "FST 5-6"],
            "metric": ["auc"] * 5,
            "value": [0.90, 0.70, 0.80, 0.85, np.nan],
            "ci_low": np.nan,
            "ci_high": np.nan,
            "n": 10,
        }
    )
    gaps = gap_rows(split_results(results))
    assert gaps[["attribute", "metric"]].values.tolist() == [["sex", "auc"], ["fst", "auc"]]
    assert gaps["value"].iloc[0] == pytest.approx(0.20)
    assert np.isnan(gaps["value"].iloc[1])  # one defined group: no gap


def test_runner_cohort_summary_per_split():
    """The runner's cohort_summary has a ``split`` column (all/train/val/test): the figure and the
    class table use the whole cohort, the splits become one count column each."""
    from fairmed.report.core.overview import _positive_class, by_split

    whole = pd.DataFrame(
        {"attribute": ["fst", "fst"], "group": ["FST 1-2", "FST 5-6"], "benign": [5, 2], "malignant": [3, 1]}
    ).assign(n=lambda f: f["benign"] + f["malignant"])
    parts = [
        whole.assign(split="all"),
        whole.assign(split="train", n=[6, 2]),
        whole.assign(split="test", n=[2, 1]),
    ]
    main_rows, counts = by_split(pd.concat(parts, ignore_index=True))
    pd.testing.assert_frame_equal(main_rows, whole)
    assert _positive_class(main_rows) == "malignant"
    assert counts.to_dict("list") == {
        "attribute": ["fst", "fst"],
        "group": ["FST 1-2", "FST 5-6"],
        "n train": [6, 2],
        "n test": [2, 1],
    }
    unchanged, no_counts = by_split(whole)
    assert unchanged is whole and no_counts is None


def test_table_html_keeps_a_named_index_and_joins_multilevel_columns():
    from fairmed.report.html import table_html

    frame = pd.DataFrame(
        [[0.5, 0.1], [0.6, 0.2]],
        index=pd.Index(["vanilla", "SCP-FairPrune"], name="method"),
        columns=pd.MultiIndex.from_tuples([("Precision", "FST 1-3"), ("Fairness", "Eodd")]),
    )
    out = table_html(frame)
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", out)
    assert headers == ["method", "Precision FST 1-3", "Fairness Eodd"]
    assert re.findall(r'<td class="text">([^<]*)</td>', out) == ["vanilla", "SCP-FairPrune"]


def test_tolerance_is_the_folders_own_unless_given(audit_dir, tmp_path):
    """`fairmed audit --tolerance` is recorded; `fairmed report DIR` rebuilds with it; a study's
    spec.yaml audit.tolerance counts likewise; an explicit --tolerance wins."""
    from fairmed.report.context import folder_tolerance

    assert folder_tolerance({"audit": {"tolerance": 0.02}}, None) == 0.02
    assert folder_tolerance(None, {"tolerance": 0.2}) == 0.2
    assert folder_tolerance({"audit": {}}, {}) == 0.05
    out = tmp_path / "audit"
    csv = audit_dir.parent / "external.csv"
    main(
        ["audit", str(csv), "--attr", "sex", "--bootstrap", "20", "--tolerance", "0.2", "--report", str(out)]
    )
    assert json.loads((out / "audit.json").read_text())["tolerance"] == 0.2
    assert "Fairness criteria at tolerance 0.2" in (out / "index.html").read_text(encoding="utf-8")
    (out / "index.html").unlink()
    main(["report", str(out)])
    assert "Fairness criteria at tolerance 0.2" in (out / "index.html").read_text(encoding="utf-8")
    main(["report", str(out), "--tolerance", "0.03"])
    assert "Fairness criteria at tolerance 0.03" in (out / "index.html").read_text(encoding="utf-8")
