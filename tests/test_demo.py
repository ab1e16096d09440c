"""`fairmed demo`, `fairmed run` on each source type (generator, image folder, embeddings), `fairmed studies`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from fairmed.cli import cli, main
from fairmed.studies.summary import summary_lines


def _invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_demo_smoke_end_to_end_with_report(tmp_path):
    out = tmp_path / "demo"
    text = _invoke("demo", "--profile", "smoke", "--jobs", "1", "--out", str(out), "--tolerance", "0.1")
    lines = text.rstrip("\n").splitlines()
    assert (out / "index.html").stat().st_size > 10_000
    assert lines[-1] == f"report: {(out / 'index.html').resolve()}"
    assert lines[-2].startswith("4 runs in ") and lines[-2].endswith(f" s -> {out}")
    # one line per method, then the summary: the whole ending fits a screen
    assert len(lines) <= 12 and max(len(line) for line in lines) <= 160
    for method in ("erm", "reweight", "adversarial", "groupdro"):
        assert sum(line.startswith(f"{method}: AUC ") for line in lines) == 1
    assert "fst gaps " in text and "; sex gaps " in text
    assert any(line.startswith("summary: under erm the largest fst gap is ") for line in lines)
    assert "Fairness criteria at tolerance 0.1" in (out / "index.html").read_text(encoding="utf-8")
    res = pd.read_parquet(out / "results.parquet")
    assert sorted(res["method"].unique()) == ["adversarial", "erm", "groupdro", "reweight"]
    assert {"FST 1-2", "FST 5-6", "female", "male", "difference"} <= set(res["group"])


def _row(method, attribute, group, metric, value, low=None, high=None, seed=0):
    return {
        "split": "test",
        "method": method,
        "seed": seed,
        "attribute": attribute,
        "group": group,
        "metric": metric,
        "value": value,
        "ci_low": value - 0.1 if low is None else low,
        "ci_high": value + 0.1 if high is None else high,
    }


SUMMARY_TABLE = {
    # erm: FST 5-6 TPR 0.5 vs 0.9 (gap 0.4, the largest); reweight narrows it to 0.1, adversarial widens it
    "erm": {"tpr": (0.9, 0.5), "auc": (0.95, 0.85), "fpr": (0.1, 0.2), "total": (0.92, 0.88)},
    "reweight": {"tpr": (0.85, 0.75), "auc": (0.94, 0.86), "fpr": (0.15, 0.3), "total": (0.91, 0.86)},
    "adversarial": {"tpr": (0.95, 0.45), "auc": (0.9, 0.7), "fpr": (0.1, 0.1), "total": (0.8, 0.75)},
    # flip: FST 5-6 now above FST 1-2 on TPR (0.9 vs 0.6): the gap reversed, not narrowed
    "flip": {"tpr": (0.6, 0.9), "auc": (0.9, 0.88), "fpr": (0.1, 0.1), "total": (0.9, 0.88)},
}


def _summary_rows(shifts):
    """Results rows of SUMMARY_TABLE, one seed per shift (shifts summing to 0 keep the table's means)."""
    rows = []
    for method, cells in SUMMARY_TABLE.items():
        for seed, shift in enumerate(shifts):
            for metric in ("tpr", "auc", "fpr"):
                light, dark = cells[metric]
                rows.append(_row(method, "fst", "FST 1-2", metric, light + shift, seed=seed))
                rows.append(_row(method, "fst", "FST 5-6", metric, dark - shift, seed=seed))
                rows.append(
                    _row(method, "fst", "difference", metric, abs(light - dark) + 2 * shift, seed=seed)
                )
                rows.append(_row(method, "sex", "difference", metric, 0.01, seed=seed))
                rows.append(_row(method, "fst", "ratio", metric, 9.0, seed=seed))
            auc, acc = cells["total"]
            rows.append(_row(method, "overall", "overall", "auc", auc, seed=seed))
            rows.append(_row(method, "overall", "overall", "accuracy", acc, seed=seed))
    return rows


def test_summary_lines_exact():
    rows = _summary_rows((-0.01, 0.01))  # two seeds whose mean is the table
    rows.append({**_row("erm", "fst", "FST 1-2", "tpr", 0.0), "split": "val"})  # other splits are ignored
    lines = summary_lines(pd.DataFrame(rows))
    # two seeds: the exact Wilcoxon cannot go below p = 0.5 (x3 by Holm), so nothing is narrowed or widened
    assert lines == [
        "test split, mean over 2 seed(s); gaps = largest - smallest group value of AUC/TPR/FPR; [..] = 95% CI",
        "erm: AUC 0.920, acc 0.880; fst gaps 0.100/0.400/0.100; sex gaps 0.010/0.010/0.010;"
        " lowest fst TPR FST 5-6 0.50 [0.40, 0.60]",
        "reweight: AUC 0.910, acc 0.860; fst gaps 0.080/0.100/0.150; sex gaps 0.010/0.010/0.010;"
        " lowest fst TPR FST 5-6 0.75 [0.65, 0.85]",
        "adversarial: AUC 0.800, acc 0.750; fst gaps 0.200/0.500/0.000; sex gaps 0.010/0.010/0.010;"
        " lowest fst TPR FST 5-6 0.45 [0.35, 0.55]",
        "flip: AUC 0.900, acc 0.880; fst gaps 0.020/0.300/0.000; sex gaps 0.010/0.010/0.010;"
        " lowest fst TPR FST 1-2 0.60 [0.50, 0.70]",
        "summary: under erm the largest fst gap is TPR 0.400; no mitigation narrows it significantly",
        "  reweight: gap 0.100 vs 0.400, not significant (accuracy -0.020, AUC -0.010;"
        " paired Wilcoxon over 2 seeds, Holm p 1; the smallest it can be with 2 seeds and 3 mitigations is 1)",
        "  adversarial: gap 0.500 vs 0.400, not significant (accuracy -0.130, AUC -0.120;"
        " paired Wilcoxon over 2 seeds, Holm p 1; the smallest it can be with 2 seeds and 3 mitigations is 1)",
        "  flip: reversed (FST 1-2 now worse off), gap now 0.300 (accuracy +0.000, AUC -0.020;"
        " paired Wilcoxon over 2 seeds, Holm p 1; the smallest it can be with 2 seeds and 3 mitigations is 1)",
    ]
    assert summary_lines(pd.DataFrame(rows).query("metric == 'value'")) == []


def test_summary_says_narrowed_only_when_the_paired_test_says_so():
    """Seven seeds, every one moving the same way: exact Wilcoxon p = 2 / 2^7 = 0.0156, Holm over the
    three mitigations 0.047 <= 0.05 for reweight and adversarial (the reversal is named as one)."""
    shifts = (-0.003, -0.002, -0.001, 0.0, 0.001, 0.002, 0.003)
    lines = summary_lines(pd.DataFrame(_summary_rows(shifts)))
    assert (
        lines[5] == "summary: under erm the largest fst gap is TPR 0.400; reweight narrows it most (-0.300)"
    )
    assert lines[6] == (
        "  reweight: narrowed to 0.100 (accuracy -0.020, AUC -0.010; paired Wilcoxon over 7 seeds, Holm p 0.047)"
    )
    assert lines[7].startswith("  adversarial: widened to 0.500 (")
    assert lines[8].startswith("  flip: reversed (FST 1-2 now worse off), gap now 0.300 (")


def test_run_on_cxr_embedding_files_in_the_smoke_profile(tmp_path):
    rng = np.random.default_rng(0)
    n, dim = 240, 6
    ids = np.array([f"d{i:04d}" for i in range(n)])
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    label = (emb[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    np.savez(tmp_path / "embeddings.npz", ids=ids, embeddings=emb)
    races = np.array(["WHITE", "BLACK/AFRICAN AMERICAN", "ASIAN - CHINESE", "HISPANIC/LATINO - PUERTO RICAN"])
    pd.DataFrame(
        {
            "dicom_id": ids,
            "subject_id": [f"p{i // 2}" for i in range(n)],  # two images per patient
            "No Finding": np.where(rng.random(n) < 0.05, np.nan, label),
            "race": races[np.arange(n) % 4],
            "sex": np.where(np.arange(n) % 3 == 0, "F", "M"),
            "age": rng.integers(20, 90, n),
            "insurance": np.where(np.arange(n) % 2 == 0, "Medicare", "Other"),
        }
    ).to_csv(tmp_path / "meta.csv", index=False)
    spec = {
        "name": "cxr",
        "source": {
            "kind": "cxr_embeddings",
            "embeddings": "embeddings.npz",  # relative to the spec's folder
            "id_column": "dicom_id",
            "tables": [{"path": "meta.csv", "on": "dicom_id"}],
        },
        "groups": ["race", "sex"],
        "design": {"group_by": "subject_id", "seeds": [0, 1, 2], "stratify": ["no_finding"]},
        "model": {"arch": "mlp", "hidden": 196},
        "strategies": ["erm", "groupdro"],
        "train": {"epochs": 20},
        "audit": {"bootstrap": 20, "min_group_size": 5},
        "profiles": {"smoke": {"model": {"hidden": 8}, "design": {"seeds": [0]}, "train": {"epochs": 2}}},
    }
    (tmp_path / "cxr.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    text = _invoke("run", str(tmp_path / "cxr.yaml"), "--profile", "smoke", "--out", str(out), "--jobs", "1")
    lines = text.splitlines()
    assert lines[0] == f"cxr: 2 run(s) executed, 0 resumed -> {out}"
    assert lines[-1] == f"report: {out / 'index.html'}"
    # between them the report's plain-language summary, the same lines `fairmed report` prints
    from fairmed.report.summary import report_summary

    assert lines[1:-1] == [f"- {line}" for line in report_summary(out)]
    assert lines[1].startswith("- The largest gap is the race ")
    assert yaml.safe_load((out / "spec.yaml").read_text())["model"] == {"arch": "mlp", "hidden": 8}
    pred = pd.read_parquet(out / "predictions.parquet")
    assert pred.groupby("method").size().to_dict() == {"erm": 96, "groupdro": 96}  # val + test: 40% of 240
    assert set(pred["race"]) == {"White", "Black", "Asian", "Hispanic"}
    assert pred["id"].str.fullmatch(r"d\d{4}").all()
    # patients never straddle splits: both images of a patient share a split
    erm = pred[pred["method"] == "erm"].assign(patient=lambda d: d["id"].str[1:].astype(int) // 2)
    assert (erm.groupby("patient")["split"].nunique() == 1).all()
    res = pd.read_parquet(out / "results.parquet")
    assert {"White", "Black", "Asian", "Hispanic", "female", "male"} <= set(res["group"])
    assert set(res["attribute"]) == {"overall", "race", "sex"}


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
    assert err == "error: bad.yaml: train.epochs: Input should be greater than or equal to 1 (got 0)\n"
    bad.write_text("name: x\ntrain: {epochs: 1}\nmodle: {}\n")
    with pytest.raises(SystemExit):
        main(["run", str(bad)])
    err = capsys.readouterr().err
    assert (
        err == "error: bad.yaml: unknown field 'modle' (study kind 'classification' takes no extra fields)\n"
    )
    with pytest.raises(SystemExit):
        main(["studies", "show", "nope"])
    err = capsys.readouterr().err
    assert err.startswith("error: nope: no such built-in study (built-in: ") and ", demo, " in err
