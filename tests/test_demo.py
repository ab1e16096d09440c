"""`fairmed demo`, `fairmed run` on each source type (generator, image folder, embeddings), `fairmed studies`."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from fairmed.cli import cli, main


def _invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_smoke_end_to_end_with_report(tmp_path):
    out = tmp_path / "demo"
    text = _invoke("demo", "--profile", "smoke", "--jobs", "1", "--out", str(out))
    assert (out / "index.html").stat().st_size > 10_000
    assert f"report: {(out / 'index.html').resolve()}" in text
    for method in ("erm", "reweight", "adversarial", "groupdro"):
        assert f"\n{method}: overall AUC " in f"\n{text}"
    assert "fst: FST 1-2: AUC " in text and "FST 5-6: AUC " in text
    assert "reweight vs erm: " in text and "the fst TPR gap" in text
    res = pd.read_parquet(out / "results.parquet")
    assert sorted(res["method"].unique()) == ["adversarial", "erm", "groupdro", "reweight"]
    assert {"FST 1-2", "FST 5-6", "female", "male", "difference"} <= set(res["group"])


def test_run_on_an_image_folder_and_on_embeddings(tmp_path):
    folder = tmp_path / "images"
    _invoke("data", "synth", "--n", "120", "--size", "16", "--out", str(folder))
    text = _invoke(
        "run",
        "smoke_images",
        "--source",
        str(folder / "source.yaml"),
        "--out",
        str(tmp_path / "img"),
        "--jobs",
        "1",
        "--no-report",
    )
    assert "smoke_images: 2 run(s) executed, 0 resumed" in text
    pred = pd.read_parquet(tmp_path / "img" / "predictions.parquet")
    per_run = pred.groupby("method").size()
    assert per_run["erm"] == per_run["groupdro"] and 44 <= per_run["erm"] <= 52  # val + test of 120 rows
    assert pred["id"].str.startswith("synth").all()
    text = _invoke("run", "smoke_embeddings", "--out", str(tmp_path / "emb"), "--jobs", "1", "--no-report")
    assert "smoke_embeddings: 3 run(s) executed" in text
    again = _invoke("run", "smoke_embeddings", "--out", str(tmp_path / "emb"), "--jobs", "1", "--no-report")
    assert "0 run(s) executed, 3 resumed" in again
    res = pd.read_parquet(tmp_path / "emb" / "results.parquet")
    assert {"race", "sex"} <= set(res["attribute"])


def test_studies_list_show_and_one_line_errors(tmp_path, capsys):
    listing = _invoke("studies", "list")
    names = [line.split()[0] for line in listing.splitlines()]
    assert names == sorted(names) and {"demo", "smoke_embeddings", "benchmark", "gce_cxr_synth"} <= set(names)
    assert "strategies: [erm, reweight" in _invoke("studies", "show", "demo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {epochs: 0}\nmodle: {}\n")
    with pytest.raises(SystemExit) as info:
        main(["run", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert (
        err == "error: bad.yaml: unknown field 'modle' (study kind 'classification' takes no extra fields)\n"
    )
    with pytest.raises(SystemExit):
        main(["studies", "show", "nope"])
    err = capsys.readouterr().err
    assert err.startswith("error: nope: no such built-in study (built-in: ") and ", demo, " in err
