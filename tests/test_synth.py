"""The image generator: determinism, the settings it carries, and every bias knob moving what it says."""

import numpy as np
import pytest

from fairmed import Cohort, SpecError
from fairmed.data.synth import SynthConfig, generate, ita_degrees, lab_to_srgb


def luminance(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def centre_vs_corners(images: np.ndarray) -> np.ndarray:
    """|mean centre luminance - mean corner luminance| per image: the lesion's visible contrast."""
    lum = luminance(images)
    s = images.shape[1]
    c = lum[:, s // 2 - 2 : s // 2 + 2, s // 2 - 2 : s // 2 + 2].mean(axis=(1, 2))
    k = max(2, s // 8)
    corners = np.concatenate(
        [lum[:, :k, :k], lum[:, :k, -k:], lum[:, -k:, :k], lum[:, -k:, -k:]], axis=1
    ).mean(axis=(1, 2))
    return np.abs(corners - c)


def test_deterministic_given_seed_and_different_across_seeds():
    cfg = SynthConfig(n=70, size=16)
    a, b, c = generate(cfg, seed=3), generate(cfg, seed=3), generate(cfg, seed=4)
    assert np.array_equal(a.images, b.images)
    assert a.table.equals(b.table)
    assert not np.array_equal(a.images, c.images)


def test_cohort_shape_labels_and_carried_settings():
    cfg = SynthConfig(n=50, size=24)
    cohort = generate(cfg, seed=1)
    assert isinstance(cohort, Cohort)
    assert cohort.images.shape == (50, 24, 24, 3) and cohort.images.dtype == np.uint8
    assert cohort.labels == ["malignant"]
    assert cohort.class_names == {"malignant": ["benign", "malignant"]}
    assert cohort.attributes == ["fst", "sex", "age"]
    assert set(cohort.table["fst"].unique()) <= set(range(1, 7))
    assert set(cohort.table["sex"].unique()) <= {"female", "male"}
    assert cohort.table["age"].between(18, 90).all()
    assert cohort.table["patient_id"].is_unique
    assert cohort.meta["synth"] == cfg.model_dump(mode="json")
    assert cohort.meta["seed"] == 1
    # the settings round-trip: "was a gap injected here?" can be asked of a saved cohort
    again = SynthConfig(**cohort.meta["synth"])
    assert again.contrast_by_fst == {5: 0.6, 6: 0.45}


def test_multiclass_condition_label():
    cohort = generate(SynthConfig(n=300, size=8, n_classes=4), seed=0)
    assert cohort.labels == ["condition"]
    assert cohort.class_names["condition"] == ["nevus", "melanoma", "inflammatory", "keratosis"]
    counts = np.bincount(cohort.y(), minlength=4)
    assert (counts > 50).all()
    many = generate(SynthConfig(n=40, size=8, n_classes=9), seed=0)
    assert many.class_names["condition"][-1] == "class_8"


def test_patients_hold_several_images_with_constant_attributes():
    cohort = generate(SynthConfig(n=400, size=8, images_per_patient=4), seed=2)
    per_patient = cohort.table.groupby("patient_id")[["fst", "sex", "age"]].nunique()
    assert (per_patient == 1).all().all()
    assert 80 <= cohort.table["patient_id"].nunique() <= 100


def test_representation_knobs():
    cfg = SynthConfig(n=6000, size=8, fst_weights=[0, 0.5, 0, 0, 0, 0.5], female_fraction=0.8)
    t = generate(cfg, seed=0).table
    assert set(t["fst"].unique()) == {2, 6}
    assert abs((t["fst"] == 6).mean() - 0.5) < 0.03
    assert abs((t["sex"] == "female").mean() - 0.8) < 0.03


def test_prevalence_per_group_and_odds_combination():
    cfg = SynthConfig(
        n=8000, size=8, prevalence=0.3, prevalence_by_fst={6: 0.7}, prevalence_by_sex={"male": 0.5}
    )
    t = generate(cfg, seed=0).table
    rate = t.groupby([t["fst"] == 6, "sex"])["malignant_clean"].mean()
    # odds multiply: FST 6 & male -> odds(0.7) * odds(0.5) / odds(0.3)
    odds = (0.7 / 0.3) * 1.0 / (0.3 / 0.7)
    assert abs(rate[(False, "female")] - 0.3) < 0.03
    assert abs(rate[(False, "male")] - 0.5) < 0.03
    assert abs(rate[(True, "female")] - 0.7) < 0.06
    assert abs(rate[(True, "male")] - odds / (1 + odds)) < 0.06


def test_label_noise_per_group():
    cfg = SynthConfig(n=6000, size=8, label_noise_by_sex={"female": 0.2}, label_noise_by_fst={1: 0.5})
    t = generate(cfg, seed=0).table
    flipped = t["malignant"] != t["malignant_clean"]
    assert flipped[(t["sex"] == "male") & (t["fst"] != 1)].sum() == 0
    assert abs(flipped[(t["sex"] == "female") & (t["fst"] != 1)].mean() - 0.2) < 0.03
    # independent flips combine as 1 - (1 - 0.2)(1 - 0.5) = 0.6
    assert abs(flipped[(t["sex"] == "female") & (t["fst"] == 1)].mean() - 0.6) < 0.07


def test_artifact_rate_follows_the_label_only_in_chosen_groups():
    cfg = SynthConfig(n=8000, size=8, artifact_rate=0.1, artifact_strength_by_fst={1: 0.8, 2: 0.8})
    t = generate(cfg, seed=0).table
    light = t["fst"].isin([1, 2])
    rate = t.groupby([light, "malignant"])["artifact"].mean()
    assert abs(rate[(True, 1)] - (0.1 + 0.8 * 0.9)) < 0.03
    assert abs(rate[(True, 0)] - 0.1 * 0.2) < 0.02
    assert abs(rate[(False, 1)] - 0.1) < 0.03
    assert abs(rate[(False, 0)] - 0.1) < 0.03
    none = generate(SynthConfig(n=500, size=8, artifact="none"), seed=0).table
    assert none["artifact"].sum() == 0


def test_ruler_is_visible_in_exactly_the_flagged_images():
    cfg = SynthConfig(n=200, size=32, artifact_rate=0.3, artifact_strength_by_fst={})
    cohort = generate(cfg, seed=5)
    redness = cohort.images[..., 0].astype(float) - cohort.images[..., 2]  # skin is red, the ruler grey
    edges = np.stack(
        [
            redness[:, :3].mean((1, 2)),
            redness[:, -3:].mean((1, 2)),
            redness[:, :, :3].mean((1, 2)),
            redness[:, :, -3:].mean((1, 2)),
        ],
        axis=1,
    )
    ruler_white = (edges < 15).any(axis=1)  # a grey strip along one edge
    assert np.array_equal(ruler_white, cohort.table["artifact"].to_numpy() == 1)


def test_lower_contrast_in_one_group_changes_only_that_group():
    base = SynthConfig(n=600, size=32, contrast_by_fst={}, artifact="none")
    low = base.model_copy(update={"contrast_by_fst": {6: 0.3}})
    a, b = generate(base, seed=1), generate(low, seed=1)
    six = a.table["fst"].to_numpy() == 6
    assert np.array_equal(a.images[~six], b.images[~six])
    ratio = centre_vs_corners(b.images[six]).mean() / centre_vs_corners(a.images[six]).mean()
    assert ratio < 0.5
    assert np.allclose(b.table.loc[six, "contrast"], 0.3)


def test_darker_skin_types_render_darker():
    cohort = generate(SynthConfig(n=1200, size=16, artifact="none"), seed=0)
    lum = luminance(cohort.images)[:, :3, :3].mean(axis=(1, 2))
    by_type = [lum[cohort.table["fst"].to_numpy() == k].mean() for k in range(1, 7)]
    assert all(a > b for a, b in zip(by_type, by_type[1:]))


def test_signal_by_sex_removes_the_class_difference_for_that_sex():
    cfg = SynthConfig(n=3000, size=24, artifact="none", contrast_by_fst={}, signal_by_sex={"male": 0.0})
    cohort = generate(cfg, seed=0)
    size = (
        luminance(cohort.images)
        < np.median(luminance(cohort.images)[:, :4, :4], axis=(1, 2))[:, None, None] - 20
    )
    area = size.mean(axis=(1, 2))
    t = cohort.table
    gap = {
        sex: area[(t["sex"] == sex) & (t["malignant"] == 1)].mean()
        - area[(t["sex"] == sex) & (t["malignant"] == 0)].mean()
        for sex in ("female", "male")
    }
    assert gap["female"] > 0.05
    assert abs(gap["male"]) < 0.02


def test_lab_to_srgb_reference_values_and_ita():
    lab = np.array([[100.0, 0, 0], [0.0, 0, 0], [50.0, 0, 0], [53.2408, 80.0925, 67.2032]])
    rgb = lab_to_srgb(lab)
    assert np.allclose(rgb[0], 1.0, atol=1e-3)
    assert np.allclose(rgb[1], 0.0, atol=1e-6)
    assert np.allclose(rgb[2] * 255, 118.9, atol=0.2)  # mid-grey L* = 50 is sRGB 119
    assert np.allclose(rgb[3], [1.0, 0.0, 0.0], atol=2e-3)  # sRGB red
    assert np.allclose(ita_degrees(np.array([[50.0 + 10.0, 0, 10.0]])), 45.0)


def test_bad_settings_are_one_line_spec_errors():
    with pytest.raises(SpecError, match=r"contrast_by_fst: unknown keys \[7\]"):
        SynthConfig(contrast_by_fst={7: 0.5})
    with pytest.raises(SpecError, match=r"label_noise_by_sex: values must lie in \[0, 1\]"):
        SynthConfig(label_noise_by_sex={"female": 1.5})
    with pytest.raises(SpecError, match="fst_weights"):
        SynthConfig(fst_weights=[1, 1, 1])
    with pytest.raises(SpecError, match="artifact_class 3 >= n_classes 2"):
        SynthConfig(artifact_class=3)


def test_mosaic_puts_each_skin_type_and_class_in_its_cell():
    from fairmed.data.synth import mosaic

    cohort = generate(SynthConfig(n=400, size=8), seed=0)
    grid, rows, classes = mosaic(cohort, per_cell=2)
    assert grid.shape == (6 * 8, 2 * 2 * 8, 3)
    assert rows[0] == "FST 1" and classes == ["benign", "malignant"]
    t = cohort.table
    first = np.flatnonzero((t["fst"] == 6).to_numpy() & (cohort.y() == 1))[0]
    assert np.array_equal(grid[40:48, 16:24], cohort.images[first])


def test_ink_mark_is_violet_and_only_in_flagged_images():
    cohort = generate(SynthConfig(n=150, size=32, artifact="ink", artifact_rate=0.4, noise=0), seed=1)
    px = cohort.images.astype(int)
    violet = (px[..., 2] - px[..., 1] > 60) & (px[..., 0] - px[..., 1] > 30)  # blue and red over green
    has_ink = violet.sum(axis=(1, 2)) > 5
    assert np.array_equal(has_ink, cohort.table["artifact"].to_numpy() == 1)


def _one_type(fst: int, **kw) -> np.ndarray:
    weights = [0.0] * 6
    weights[fst - 1] = 1.0
    return generate(SynthConfig.neutral(n=40, size=32, fst_weights=weights, **kw), seed=5).images


def test_fixed_amplitudes_differ_only_in_skin_colour():
    """Same seed, FST 2 vs FST 5: with fixed amplitudes every image differs by one colour per channel
    (up to uint8 rounding and clipping); with relative amplitudes the texture and lesion scale too."""
    for amplitudes, alike in (("fixed", True), ("relative", False)):
        a = _one_type(2, noise=0, amplitudes=amplitudes).astype(float)
        b = _one_type(5, noise=0, amplitudes=amplitudes).astype(float)
        inside = (a > 0) & (a < 255) & (b > 0) & (b < 255)
        diff = np.where(inside, a - b, np.nan).reshape(len(a), -1, 3)
        spread = np.nanmax(diff, axis=1) - np.nanmin(diff, axis=1)  # per image and channel
        assert inside.mean() > 0.97
        if alike:
            assert spread.max() <= 2.0  # two roundings to uint8
        else:
            assert np.median(spread) > 20


def test_neutral_preset_switches_every_group_difference_off():
    cfg = SynthConfig.neutral(n=10, contrast=0.8)
    assert cfg.contrast_by_fst == {} and cfg.artifact == "none" and cfg.artifact_strength_by_fst == {}
    assert cfg.amplitudes == "fixed" and cfg.contrast == 0.8
    light, dark = (_one_type(k, amplitudes="relative").reshape(40, -1, 3).var(axis=1).mean() for k in (2, 5))
    fixed_light, fixed_dark = (_one_type(k).reshape(40, -1, 3).var(axis=1).mean() for k in (2, 5))
    assert dark < 0.6 * light  # real-world default: darker skin, less pixel variance
    assert abs(fixed_dark / fixed_light - 1) < 0.05  # neutral: the same up to clipping
