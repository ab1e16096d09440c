"""The built-in real-data studies end to end on the shared subsets (80 PAD-UFES-20 photographs, 84
COVID-19 chest radiographs): real pixels through decoding, cross-validation, training, audit, report."""

from html import unescape

import pandas as pd
import pytest
from click.testing import CliRunner

from fairmed.cli import cli

STUDIES = {  # data folder, images, audited attributes, groups under 30 images the report must warn about
    "pad_ufes20": ("pad-ufes-20-subset", 80, {"sex", "age", "fst"}, "<60 (age, n=26), FST 3-5 (fst, n=29)"),
    "covid_cxr": ("covid-chestxray-subset", 84, {"sex", "age"}, None),
}


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_smoke_profile_on_the_shared_subset(study, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRMED_CACHE", str(tmp_path / "cache"))  # decode the real files, cold
    folder, n, attributes, few = STUDIES[study]
    source = tmp_path / "S.yaml"
    data = shared_data / folder
    source.write_text(f"kind: {study}\ncsv: {data / 'metadata.csv'}\nimages: {data / 'images'}\n")
    out = tmp_path / "out"
    args = ["run", study, "--profile", "smoke", "--source", str(source), "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{study}: 5 run(s) executed, 0 resumed" in result.output  # 5 folds x 1 repeat x ERM
    predictions = pd.read_parquet(out / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    assert len(test) == n and test["id"].is_unique  # every image tested once in the repeat
    assert sorted(test["fold"].unique()) == [0, 1, 2, 3, 4]
    results = pd.read_parquet(out / "results.parquet")
    auc = results[(results["metric"] == "auc") & (results["attribute"] == "sex")].set_index("group")
    assert {"female", "male"} <= set(auc.index)
    assert auc.loc[["female", "male"], "value"].between(0, 1).all()
    assert auc.loc["female", "n"] + auc.loc["male", "n"] == n
    assert attributes <= set(results["attribute"])
    html = unescape((out / "index.html").read_text())
    assert "too small for any fairness conclusion" in html
    assert ("Few images in" in html) == (few is not None) and (few is None or few in html)
