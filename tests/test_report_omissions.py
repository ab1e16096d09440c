"""A report never drops a section in silence: curves for renamed columns and `+missing` groupings,
a stated reason when none can be drawn, and a degenerate model's criteria called vacuous."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairmed.cli import main
from fairmed.report.summary import report_summary


def _preds(path, *, label="y_true", score="y_score", scale=1.0):
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.4).astype(int)
    age = rng.integers(20, 90, n).astype(float)
    age[rng.random(n) < 0.15] = np.nan
    frame = pd.DataFrame(
        {
            label: y,
            score: scale * np.clip(0.3 * y + 0.35 + rng.normal(0, 0.2, n), 0, 1),
            "sex": rng.choice(["female", "male"], n),
            "age": age,
        }
    )
    frame.to_csv(path, index=False)
    return path


def _audit(tmp_path, csv, *args):
    out = tmp_path / "report"
    main(["audit", str(csv), "--attr", "sex", "--bootstrap", "0", "--report", str(out), *args])
    return out


def _figures(out):
    return {p.stem for p in (out / "figures").glob("*.png")}


def test_renamed_columns_get_roc_and_calibration(tmp_path):
    csv = _preds(tmp_path / "p.csv", label="label", score="prob")
    out = _audit(tmp_path, csv, "--label", "label", "--score", "prob")
    assert {"roc_sex", "calibration_sex"} <= _figures(out)


def test_missing_grouping_and_its_intersection_get_curves(tmp_path):
    out = _audit(tmp_path, _preds(tmp_path / "p.csv"), "--attr", "age:60+missing", "--intersect")
    assert {"roc_age", "calibration_age", "roc_sex-age", "calibration_sex-age"} <= _figures(out)


def test_no_score_column_is_said_in_the_report(tmp_path):
    csv = _preds(tmp_path / "p.csv")
    frame = pd.read_csv(csv)
    frame.assign(decision=(frame["y_score"] > 0.5).astype(int)).drop(columns="y_score").to_csv(
        csv, index=False
    )
    out = _audit(tmp_path, csv, "--pred", "decision")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "No ROC or calibration curves: the predictions have no label column" in html


def test_degenerate_model_criteria_are_vacuous(tmp_path):
    out = _audit(tmp_path, _preds(tmp_path / "p.csv", scale=0.1))  # every score < 0.5: no positive
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Degenerate model (model: no positive)" in html
    assert html.count("vacuous\n") == 3  # the DP, EqOpp and EqOdds cells of sex
    lines = report_summary(out)
    assert any(line.startswith("The model is degenerate") for line in lines)
    assert not any("holds" in line for line in lines)
