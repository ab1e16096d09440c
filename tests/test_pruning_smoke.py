"""The channel-pruning study's smoke profile end to end on the generator: audit, tables, report."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.report.build import build_report
from fairmed.studies.pruning import BUILTIN, METHODS, PruningStudy, run_spec, split_parts


@pytest.fixture(scope="module")
def cohort():
    torch.set_num_threads(1)
    # multi-class lesions whose morphology is harder to see on dark skin (FST 5-6)
    return generate(SynthConfig(n=420, size=16, n_classes=4, signal_by_fst={5: 0.5, 6: 0.4}), seed=0)


def test_split_keeps_patients_together_and_covers_everyone(cohort):
    study = PruningStudy.profile("smoke")
    parts = split_parts(cohort, study, seed=3)
    assert sum(len(p) for p in parts) == len(cohort)
    assert len(set().union(*(set(p.table["id"]) for p in parts))) == len(cohort)
    patients = [set(p.table["patient_id"]) for p in parts]
    assert (
        not (patients[0] & patients[1])
        and not (patients[0] & patients[2])
        and not (patients[1] & patients[2])
    )
    again = split_parts(cohort, study, seed=3)
    assert all(list(a.table["id"]) == list(b.table["id"]) for a, b in zip(parts, again))


def test_profiles():
    assert PruningStudy.profile("smoke").model["arch"] == "small_cnn"
    assert PruningStudy().model == {"arch": "vgg11", "image_size": 128}
    with pytest.raises(SpecError, match="profile"):
        PruningStudy.profile("huge")


def test_smoke_study_end_to_end(tmp_path):
    torch.set_num_threads(1)
    results = run_spec(BUILTIN / "pruning_synth.yaml", tmp_path)  # the builtin spec, smoke profile
    crit = results[
        (results["group"] == "criterion") & (results["metric"] == "eodd") & (results["split"] == "test")
    ]
    assert set(crit["method"]) == set(METHODS)
    for name in ("spec.yaml", "predictions.parquet", "results.parquet"):
        assert (tmp_path / name).is_file()
    metrics = pd.read_parquet(tmp_path / "tables" / "pruning_metrics.parquet")
    assert list(metrics["method"]) == list(METHODS)
    # the study's Eodd (fairmed.metrics counts) equals the audit's
    for _, row in metrics.iterrows():
        audited = crit.loc[crit["method"] == row["method"], "value"].iloc[0]
        assert row["eodd"] == pytest.approx(audited)
    page = build_report(tmp_path)
    html = page.read_text()
    assert "Fairness through channel pruning: methods compared" in html
    assert "Channel scores and pruning iterations" in html
    assert (tmp_path / "figures" / "pruning_fate_layer.png").is_file()


def test_builtin_specs_parse_with_their_profiles():
    import yaml

    from fairmed.studies.pruning import study_from_spec

    spec = yaml.safe_load((BUILTIN / "pruning_fitzpatrick17k.yaml").read_text())
    source, paper = study_from_spec(spec)
    assert source["label"] == "label" and paper.model == {"arch": "vgg11", "image_size": 128}
    assert paper.groups == "fst:123-456" and paper.train["epochs"] == 50 and paper.seeds == [0, 1, 2]
    assert (
        paper.pruning.scp.ratio == 0.02 and paper.pruning.sweep_layers == [-2, -3] and paper.group_by is None
    )
    source, cpu = study_from_spec(spec, "cpu")
    assert (
        source["label"] == "nine_partition_label"
        and cpu.model["image_size"] == 64
        and cpu.train["patience"] == 4
    )
    spec = yaml.safe_load((BUILTIN / "pruning_isic2019.yaml").read_text())
    source, isic = study_from_spec(spec)
    assert source["kind"] == "isic2019" and isic.groups == "sex" and isic.model["arch"] == "resnet18"
    spec = yaml.safe_load((BUILTIN / "pruning_synth.yaml").read_text())
    source, smoke = study_from_spec(spec)
    assert source["config"]["n_classes"] == 4 and smoke.model["arch"] == "small_cnn" and smoke.seeds == [0]
    assert smoke.pruning.scp.th_fair == -1.0 and smoke.bootstrap == 0
    _, cpu = study_from_spec(spec, "cpu")
    assert cpu.pruning.scp.ratio == 0.02 and cpu.pruning.scp.th_fair == 0.0 and cpu.seeds == [0, 1, 2]
    with pytest.raises(SpecError, match="expected 'channel_pruning'"):
        study_from_spec({**spec, "kind": "composition"})
