"""`fairmed audit` end to end: CSV and Parquet in, a readable table out, Results files, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairmed.cli import main


def _write(tmp_path, suffix=".csv"):
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "method": np.repeat(["erm", "groupdro"], n // 2),
            "y_true": y,
            "y_score": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
            "sex": rng.choice(["female", "male"], n),
            "fst": rng.integers(1, 7, n),
        }
    )
    path = tmp_path / f"preds{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    return path


@pytest.mark.parametrize(("suffix", "out"), [(".csv", "results.parquet"), (".parquet", "results.json")])
def test_cli_audit_writes_results(tmp_path, capsys, suffix, out):
    path = _write(tmp_path, suffix)
    main([
        "audit", str(path), "--attr", "sex", "--attr", "fst:123-456", "--intersect",
        "--bootstrap", "50", "--out", str(tmp_path / out),
    ])  # fmt: skip
    text = capsys.readouterr()
    assert "### method=erm" in text.out and "| female |" in text.out and "difference" in text.out
    results = pd.read_parquet(tmp_path / out) if out.endswith(".parquet") else pd.read_json(tmp_path / out)
    assert {"method", "attribute", "group", "metric", "value", "ci_low", "ci_high", "n"} <= set(
        results.columns
    )
    assert set(results["attribute"]) == {"overall", "sex", "fst", "sex*fst"}
    assert "female & FST 1-3" in set(results["group"])


def test_cli_audit_report_folder(tmp_path, capsys, monkeypatch):
    import fairmed.report

    built = []
    monkeypatch.setattr(
        fairmed.report, "build_report", lambda d: built.append(d) or d / "index.html", raising=False
    )
    path = _write(tmp_path)
    main(["audit", str(path), "--attr", "sex", "--bootstrap", "10", "--report", str(tmp_path / "rep")])
    rep = tmp_path / "rep"
    assert (rep / "predictions.parquet").exists() and (rep / "results.parquet").exists()
    options = json.loads((rep / "audit.json").read_text())
    assert options["attrs"] == ["sex"] and options["bootstrap"] == 10
    assert built == [rep]


def test_cli_error_is_one_line(tmp_path, capsys):
    path = _write(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["audit", str(path), "--attr", "sex", "--label", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "'nope'" in err and "\n" not in err


def test_cli_audit_report_when_seed_is_the_only_run_key(tmp_path, capsys):
    """Regression: the report's run table grouped by no key at all and crashed (pandas 'No group keys')."""
    frame = pd.read_csv(_write(tmp_path)).drop(columns="method")
    frame["seed"] = np.repeat([0, 1], len(frame) // 2)
    path = tmp_path / "seeds.csv"
    frame.to_csv(path, index=False)
    main(["audit", str(path), "--attr", "sex", "--bootstrap", "10", "--report", str(tmp_path / "rep")])
    assert "### seed=0" in capsys.readouterr().out
    results = pd.read_parquet(tmp_path / "rep" / "results.parquet")
    assert sorted(results["seed"].unique()) == [0, 1]
    text = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert "1 configuration, each over seeds 0, 1." in text
