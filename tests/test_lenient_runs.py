"""Unreadable images in a study: strict (default) fails naming the file, lenient drops and lists them."""

import pandas as pd
import pytest
from click.testing import CliRunner

from fairmed import DataError
from fairmed.cli import cli


def _folder_with_bad_files(tmp_path):
    folder = tmp_path / "images"
    result = CliRunner().invoke(cli, ["data", "synth", "--n", "80", "--size", "16", "--out", str(folder)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(folder / "metadata.csv")
    bad = table["path"].iloc[[3, 10]].tolist()
    data = (folder / bad[0]).read_bytes()
    (folder / bad[0]).write_bytes(data[: len(data) // 2])  # truncated
    (folder / bad[1]).write_text("not pixels")
    return folder, bad


def test_strict_fails_with_one_line_and_lenient_drops_and_lists(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRMED_CACHE", str(tmp_path / "cache"))
    folder, bad = _folder_with_bad_files(tmp_path)
    args = ["run", "smoke_images", "--source", str(folder / "source.yaml"), "--jobs", "1"]
    with pytest.raises(DataError) as err:
        CliRunner().invoke(
            cli, [*args, "--out", str(tmp_path / "strict"), "--no-report"], catch_exceptions=False
        )
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(folder / bad[0]))
    assert "is truncated" in message and "2 unreadable image(s)" in message and "--lenient" in message

    out = tmp_path / "lenient"
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--lenient"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    dropped = pd.read_parquet(out / "tables" / "dropped_images.parquet")
    assert dropped["path"].tolist() == bad
    assert dropped["reason"].str.startswith("truncated").tolist() == [True, False]
    assert dropped["reason"].iloc[1] == "not an image (no known image format)"
    assert f"dropped unreadable image {bad[1]}" in result.output
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert not set(dropped["id"]) & set(predictions["id"])
    assert "lenient: true" in (out / "spec.yaml").read_text()
    html = (out / "index.html").read_text()
    assert "Images dropped as unreadable (2; lenient mode)" in html and bad[1] in html


def test_lenient_and_cv_folds_are_spec_fields():
    from fairmed import SpecError
    from fairmed.studies.kinds import get_kind
    from fairmed.studies.spec import resolve_spec

    spec = resolve_spec({"name": "s", "lenient": True, "design": {"cv_folds": 3, "seeds": [0, 1]}})
    assert spec.lenient and spec.design.fold_list() == [0, 1, 2]
    runs = get_kind("classification").expand(spec)
    assert [r.run_id for r in runs[:3]] == [
        "default__erm__s0__f0",
        "default__erm__s0__f1",
        "default__erm__s0__f2",
    ]
    assert len(runs) == 6 and runs[0].keys["fold"] == 0
    with pytest.raises(
        SpecError, match=r"s.yaml: design.cv_folds: Input should be greater than or equal to 2"
    ):
        resolve_spec({"design": {"cv_folds": 1}}, where="s.yaml")
    with pytest.raises(
        SpecError, match=r"design.cv_folds: study kind 'vae_fairness' does not take cross-validation"
    ):
        resolve_spec({"kind": "vae_fairness", "design": {"cv_folds": 5}}, where="s.yaml")
