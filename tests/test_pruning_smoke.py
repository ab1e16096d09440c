"""The channel-pruning study kind end to end through the runner (builtin generator spec, smoke
profile): runs, audit, the kind's tables and the report sections; the builtin specs validate."""

from __future__ import annotations

import pandas as pd
import pytest

from fairmed.errors import SpecError
from fairmed.studies.pruning import METHODS, PruningFields, expand
from fairmed.studies.runner import run_study
from fairmed.studies.spec import BUILTIN_DIR, load_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_builtin_specs_validate_with_their_profiles():
    fitz = load_spec("pruning_fitzpatrick17k")
    assert fitz.kind == "channel_pruning" and fitz.profile == "paper"
    assert fitz.model == {"arch": "vgg11", "image_size": 128} and fitz.source["label"] == "label"
    settings = fitz.settings().pruning
    assert settings.scp.ratio == 0.02 and settings.sweep_layers == [-2, -3]
    cpu = load_spec("pruning_fitzpatrick17k", profile="cpu")
    assert cpu.source["label"] == "nine_partition_label" and cpu.model["image_size"] == 64
    isic = load_spec("pruning_isic2019")
    assert isic.groups == ["sex"] and isic.model["arch"] == "resnet18" and isic.source["label"] == "diagnosis"
    smoke = load_spec("pruning_synth")
    assert smoke.profile == "smoke" and smoke.settings().pruning.scp.th_fair == -1.0
    ids = [r.run_id for r in expand(smoke)]
    assert ids == [f"main__{m}__s0" for m in METHODS] + [
        "pr_c=0.25__scp_vanilla__s0",
        "layer=0__scp_vanilla__s0",
    ]
    with pytest.raises(Exception, match="vanilla"):
        PruningFields.model_validate({"pruning": {"methods": ["fairprune"]}})


def test_unknown_field_is_a_one_line_error(tmp_path):
    import yaml

    raw = yaml.safe_load((BUILTIN_DIR / "pruning_synth.yaml").read_text())
    raw["pruning"]["nonsense"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="nonsense"):
        load_spec(path)


def test_smoke_study_through_the_runner(tmp_path):
    outcome = run_study("pruning_synth", tmp_path, jobs=1)
    assert len(outcome.runs) == len(METHODS) + 2 and not outcome.skipped
    results = outcome.results
    crit = results[(results["group"] == "criterion") & (results["metric"] == "eodd")]
    assert set(crit["split"]) == {"test"}
    main = crit[crit["config"] == "main"]
    assert set(main["method"]) == set(METHODS)
    tables = {p.stem: pd.read_parquet(p) for p in (tmp_path / "tables").glob("*.parquet")}
    assert sorted(tables) == ["pruning_history", "pruning_metrics", "pruning_scores"]
    metrics = tables["pruning_metrics"]
    assert list(metrics["method"]) == list(METHODS)
    for _, row in metrics.iterrows():  # the kind's Eodd (fairmed.metrics counts) equals the audit's
        assert row["eodd"] == pytest.approx(main.loc[main["method"] == row["method"], "value"].iloc[0])
    history = tables["pruning_history"]
    sweep = history[history["method"] == "scp_vanilla pr_c=0.25"]
    assert list(sweep["channels"]) == [16, 12, 8] and set(sweep["sweep"]) == {"ratio"}
    last = history[history["method"] == "scp_vanilla"].iloc[-1]  # the final model's predictions
    assert metrics.set_index("method").loc["scp_vanilla", "eodd"] == pytest.approx(last["test_eodd"])
    scores = tables["pruning_scores"]
    assert (scores[(scores["method"] == "scp_vanilla") & (scores["iteration"] == -1)].shape[0]) == 12
    html = outcome.report.read_text()
    assert "Fairness through channel pruning: methods compared" in html
    assert "Channel scores and pruning iterations" in html
    assert (tmp_path / "figures" / "pruning_fate_ratio.png").is_file()
    again = run_study("pruning_synth", tmp_path, jobs=1)  # resume: nothing reruns
    assert not again.executed and len(again.skipped) == len(outcome.runs)
