"""What a new user meets first: text labels, renamed columns, a chosen threshold, source layouts,
an executor that cannot start, small values in tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairmed.cli import main
from fairmed.errors import SpecError
from fairmed.metrics.audit import _fmt
from fairmed.studies.executors import check_executor


def _csv(tmp_path, **renames):
    rng = np.random.default_rng(3)
    n = 200
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "y_true": np.where(y == 1, "malignant", "benign"),
            "y_score": np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1),
            "sex": rng.choice(["female", "male"], n),
            "split": np.where(np.arange(n) < 100, "val", "test"),
        }
    ).rename(columns=renames)
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    return path


def _audit(path, *args):
    main(["audit", str(path), "--attr", "sex", "--bootstrap", "0", *args])


def _error(capsys, path, *args) -> str:
    """The one line a failing `fairmed audit` prints (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        _audit(path, *args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


def test_text_labels_hint_at_positive_and_positive_maps_them(tmp_path, capsys):
    path = _csv(tmp_path)
    assert _error(capsys, path).endswith(
        "for text labels name the positive class with --positive (e.g. --positive malignant)"
    )
    _audit(path, "--positive", "malignant")
    assert "| female |" in capsys.readouterr().out
    assert _error(capsys, path, "--positive", "Malignant") == (
        f"error: --positive 'Malignant': column 'y_true' of {path} holds malignant, benign"
    )


def test_missing_label_column_hints_at_label_and_score(tmp_path, capsys):
    path = _csv(tmp_path, y_true="label", y_score="prob")
    frame = pd.read_csv(path)
    frame.assign(label=(frame["label"] == "malignant").astype(int)).to_csv(path, index=False)
    assert _error(capsys, path).endswith(
        "not found (have: label, prob, sex, split); name your columns with --label COLUMN and --score COLUMN"
    )


def test_rule_threshold_is_printed(tmp_path, capsys):
    _audit(_csv(tmp_path), "--positive", "malignant", "--threshold", "youden")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("threshold")]
    assert len(lines) == 1 and lines[0].startswith("threshold (youden, chosen on the split=val rows): 0.")


def test_data_sources_prints_every_layout(capsys):
    main(["data", "sources"])
    out = capsys.readouterr().out
    assert "    fitzpatrick17k.csv      the official annotation table" in out
    assert "    HAM10000_metadata.csv " in out and "    metadata.csv            one row per image" in out


def test_ray_client_address_refused_in_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "grpc" else real(name))
    with pytest.raises(
        SpecError, match=r"ray://h:1: a ray:// address needs the Ray client \(pip install 'ray\[client\]'\)"
    ):
        check_executor("ray", "ray://h:1")
    check_executor("ray", "10.0.0.1:6379")  # a plain address needs no client


def test_small_values_keep_significant_digits():
    assert _fmt(0.004123, 0.00398, 0.00425, 3) == "0.00412 [0.00398, 0.00425]"
    assert _fmt(0.5, 0.4, 0.6, 3) == "0.500 [0.400, 0.600]"
    assert _fmt(0.0, np.nan, np.nan, 3) == "0.000"


def test_studies_list_never_cuts_into_a_parenthesis(capsys):
    from fairmed.studies.spec import first_sentence, shorten

    main(["studies", "list"])
    for line in capsys.readouterr().out.splitlines():
        description = line.split("  ", 1)[1].strip()
        assert description.count("(") == description.count(")"), line
    assert first_sentence("On embeddings (e.g. MIMIC). More.") == "On embeddings (e.g. MIMIC)"
    assert (
        shorten("Every method (six strategies, GCE) on the same splits", 40)
        == "Every method on the same splits"
    )
    assert shorten("one two three four", 12) == "one two..."


def test_data_summary_of_a_study_uses_its_groups_named_apart(tmp_path, capsys):
    spec = tmp_path / "study.yaml"
    spec.write_text(
        'source: {kind: synth, config: {n: 120, size: 8}}\ngroups: ["fst:12-56", "fst:123-456"]\n',
        encoding="utf-8",
    )
    main(["data", "summary", str(spec)])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert set(rows) == {"fst:12-56", "fst:123-456"}


def test_describe_names_two_groupings_of_one_attribute_apart():
    from fairmed.data.groups import GroupSpec
    from fairmed.data.synth import SynthConfig, generate

    cohort = generate(SynthConfig(n=60, size=8), seed=0)
    table = cohort.describe([GroupSpec.fitzpatrick("12-56"), GroupSpec.fitzpatrick("123-456"), "sex"])
    assert list(dict.fromkeys(table["attribute"])) == [
        "fst (FST 1-2 / FST 5-6)",
        "fst (FST 1-3 / FST 4-6)",
        "sex",
    ]
