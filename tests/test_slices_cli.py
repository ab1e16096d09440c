"""`fairmed slices` end to end: the printed table, the Results file, the report's 'Where it fails'
section, and the one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from fairmed.cli import main
from fairmed.data.synth_predictions import planted_slice_predictions
from test_report_data import check_self_contained


@pytest.fixture(scope="module")
def preds(tmp_path_factory):
    path = tmp_path_factory.mktemp("slices") / "preds.csv"
    planted_slice_predictions(50_000, n_attrs=5, seed=2).drop(columns="planted").to_csv(path, index=False)
    return path


def test_cli_slices_table_results_and_report(preds, tmp_path, capsys):
    out, report = tmp_path / "slices.parquet", tmp_path / "report"
    main([
        "slices", str(preds), "--attr", "sex", "--attr", "age", "--attr", "fst", "--attr", "site",
        "--attr", "view", "--metric", "fpr", "--top", "5", "--out", str(out), "--report", str(report),
    ])  # fmt: skip
    text = capsys.readouterr()
    assert "| 1 | sex=female & site=D & view=lateral |" in text.out
    assert "held-out rows (unit: row)" in text.err
    frame = pd.read_parquet(out)
    assert list(frame.columns[:7]) == ["attribute", "group", "metric", "value", "ci_low", "ci_high", "n"]
    first = frame[frame["rank"] == 1].set_index("metric")
    assert first.loc["fpr_vs_rest", "attribute"] == "sex*site*view"
    assert first.loc["fpr_vs_rest", "p_adjusted"] < 0.01
    assert first.loc["fpr", "ci_low"] < first.loc["fpr", "value"] < first.loc["fpr", "ci_high"]
    page = check_self_contained(report)
    assert "slices" in page.sections
    assert (report / "figures" / "slices.png").exists()
    assert "Where it fails" in (report / "index.html").read_text(encoding="utf-8")


def test_cli_slices_errors(preds, tmp_path, capsys):
    runs = pd.read_csv(preds).assign(seed=lambda f: f.index % 2)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["slices", str(tmp_path / "runs.csv"), "--attr", "sex"])
    assert exc.value.code == 2
    assert "holds 2 runs (differing in seed)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["slices", str(preds), "--attr", "sex", "--metric", "ece"])
    assert "ece cannot be searched over slices" in capsys.readouterr().err
