"""Specs do what the user edited: a value changed in a copy of a built-in wins over its profile, the
profile's changes are said (and written in spec.yaml's header), the output folder is the typed name."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairmed.errors import SpecError
from fairmed.studies.runner import _spec_text, default_out_dir
from fairmed.studies.spec import BUILTIN_DIR, load_spec, profile_overrides


def _copy_of_demo(tmp_path: Path, old: str = "", new: str = "") -> Path:
    text = (BUILTIN_DIR / "demo.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "my.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_edited_value_in_a_copy_wins_over_the_profile(tmp_path):
    path = _copy_of_demo(tmp_path, "seeds: [0, 1, 2]", "seeds: [0, 1]")
    spec = load_spec(path, profile="smoke")
    assert spec.design.seeds == [0, 1] and spec.train["epochs"] == 1
    assert spec._profile_notes == [
        "profile smoke set source.config.n 3200 -> 240, source.config.size 32 -> 16, model.image_size "
        "32 -> 16, train.epochs 6 -> 1, audit.bootstrap 200 -> 20, audit.min_group_size 20 -> 5",
        "profile smoke: kept your design.seeds [0, 1] over the profile's [0] (values you changed from "
        "the built-in spec win)",
    ]
    assert "# profile smoke: kept your design.seeds [0, 1]" in _spec_text(spec)


def test_unedited_copy_and_builtin_take_the_profile(tmp_path):
    for spec in (load_spec(_copy_of_demo(tmp_path), profile="smoke"), load_spec("demo", profile="smoke")):
        assert spec.design.seeds == [0] and len(spec._profile_notes) == 1


def test_invalid_edit_fails_with_or_without_a_profile(tmp_path):
    path = _copy_of_demo(tmp_path, "train: {epochs: 6,", "train: {epochs: 0,")
    for profile in (None, "smoke"):
        with pytest.raises(SpecError, match="epochs"):
            load_spec(path, profile=profile)


def test_own_spec_profile_overrides_and_says_so():
    raw = {"design": {"seeds": [0, 1]}, "train": {"epochs": 3}}
    block, applied, kept = profile_overrides(raw, {"design": {"seeds": [0]}, "train": {"epochs": 3}}, None)
    assert block == {"design": {"seeds": [0]}, "train": {"epochs": 3}}
    assert applied == ["design.seeds [0, 1] -> [0]"] and kept == []


def test_default_output_folder_is_the_typed_name(tmp_path):
    assert default_out_dir(load_spec("sex_ratio_synth")) == Path("fairmed-out/sex_ratio_synth")
    copy = load_spec(_copy_of_demo(tmp_path))  # keeps `name: demo`
    assert copy.name == "demo" and default_out_dir(copy) == Path("fairmed-out/my")
