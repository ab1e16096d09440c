"""The VAE fairness study: the one loop trains the VAE objective, a smoke run end to end, the analysis tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import mannwhitneyu

from fairmed.data.cohort import Cohort
from fairmed.data.synth import SynthConfig, generate
from fairmed.models.backbones import image_batch
from fairmed.models.perceptual import FeatureNet
from fairmed.models.vae import VAE, VAEConfig, to_tensor, vae_loss
from fairmed.schema import RUN_KEYS
from fairmed.studies.vae import (
    VAEObjective,
    VAEStudy,
    VAETrainable,
    compare_test_groups,
    disease_prevalence,
    representation_trend,
    run_vae_study,
    summary_text,
    value_summary,
)


def test_loop_wrapper_sees_the_vae_objective():
    torch.manual_seed(0)
    cfg = VAEConfig(image_size=16, channels=[8], latent_channels=2, perceptual_weight=2.0)
    vae = VAE(cfg).eval()
    net = VAETrainable(vae).eval()
    pixels = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    x01 = to_tensor(pixels.numpy())
    torch.testing.assert_close(
        net.features(image_batch(pixels)), x01, atol=1e-6, rtol=0
    )  # undoes the loop's norm
    phi = FeatureNet(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.ReLU()), taps=[1])
    obj = VAEObjective(3 * 256, 2 * 8 * 8, cfg.obs_var, cfg.beta, cfg.perceptual_weight, phi, (3, 16, 16))
    packed = net(image_batch(pixels))
    x, x_hat, mu, logvar = obj.unpack(packed)
    torch.testing.assert_close(x, x01, atol=1e-6, rtol=0)
    # eval mode decodes the mean: the objective equals vae_loss with zero sampling noise (logvar -> z = mu)
    mu2, logvar2 = vae.encode(x01)
    torch.testing.assert_close(mu, mu2.flatten(1))
    torch.testing.assert_close(x_hat, vae.decode(mu2))
    vae.encode = lambda t: (mu2, torch.full_like(logvar2, -80.0))  # sigma ~ 0: the sampled z equals mu
    ref, _ = vae_loss(vae, x01, phi)
    obj0 = VAEObjective(3 * 256, 2 * 8 * 8, cfg.obs_var, cfg.beta, cfg.perceptual_weight, phi, (3, 16, 16))
    per = obj0.per_sample(torch.cat([x.flatten(1), x_hat.flatten(1), mu, torch.full_like(mu, -80.0)], 1))
    assert per.mean().item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    cohort = generate(SynthConfig(n=260, size=16, n_classes=3, fst_weights=[1, 1, 0.3, 0.3, 1, 1]), seed=0)
    study = VAEStudy.profile("smoke", num_threads=1)
    out = tmp_path_factory.mktemp("vae")
    return cohort, study, run_vae_study(cohort, study, examples_dir=out), out


def test_smoke_study_end_to_end(smoke):
    cohort, study, preds, out = smoke
    proto = study.protocol
    assert len(preds) == proto.repeats * len(proto.dark_fractions) * 2 * proto.n_test
    assert set(RUN_KEYS) <= set(preds.columns) and {"recon_mse", "latent_std", "elbo", "fst"} <= set(
        preds.columns
    )
    assert preds["config"].unique().tolist() == ["A (0% dark)", "B (50% dark)", "C (100% dark)"]
    assert np.isfinite(preds[["recon_mse", "latent_std", "elbo"]].to_numpy()).all()
    assert (preds["recon_mse"] > 0).all() and (preds["recon_mse"] < 1).all()
    light = preds["test_group"] == "FST 1-2"
    assert preds.loc[light, "fst"].isin([1, 2]).all() and preds.loc[~light, "fst"].isin([5, 6]).all()
    # every model sees the same two test sets
    ids = preds.groupby("config")["id"].apply(lambda s: tuple(sorted(s)))
    assert ids.nunique() == 1
    assert (preds["phi"] == "random_fallback").all()
    files = sorted(p.name for p in out.glob("vae_examples_*.npz"))
    assert len(files) == 6
    ex = np.load(out / files[0])
    assert (
        ex["image"].shape == ex["recon"].shape == (study.examples, 16, 16, 3)
        and ex["recon"].dtype == np.uint8
    )
    prev = disease_prevalence(cohort, study)
    assert set(prev["condition"]) == set(cohort.class_names["condition"][:3])
    np.testing.assert_allclose(prev.groupby("label")[["light", "dark"]].sum().to_numpy(), 1.0)


def test_analysis_tables_exact():
    preds = pd.DataFrame(
        {
            "method": "vae",
            "config": ["A"] * 6 + ["C"] * 6,
            "dark_fraction": [0.0] * 6 + [1.0] * 6,
            "test_group": (["FST 1-2"] * 3 + ["FST 5-6"] * 3) * 2,
            "recon_mse": [1.0, 2.0, 3.0, 4.0, 5.0, 9.0, 1.0, 1.0, 4.0, 2.0, 3.0, 3.0],
        }
    )
    s = value_summary(preds)
    a_dark = s[(s["config"] == "A") & (s["test_group"] == "FST 5-6")].iloc[0]
    assert (a_dark["mean"], a_dark["median"], a_dark["q25"], a_dark["q75"], a_dark["n"]) == (
        6.0,
        5.0,
        4.5,
        7.0,
        3,
    )
    c = compare_test_groups(preds)
    ref = mannwhitneyu([1.0, 2.0, 3.0], [4.0, 5.0, 9.0])
    # the pooled-image test is descriptive only; one repeat (no repeat key): no repeat-level test
    assert c.loc[0, "u_pooled"] == ref.statistic and c.loc[0, "p_pooled"] == pytest.approx(ref.pvalue)
    assert c.loc[0, "n_repeats"] == 1 and np.isnan(c.loc[0, "p"]) and c.loc[0, "stars"] == ""
    assert c.loc[0, "dark_minus_light"] == pytest.approx(4.0) and c.loc[
        1, "dark_minus_light"
    ] == pytest.approx(2.0 / 3.0)
    assert c["higher"].tolist() == ["FST 5-6", "FST 5-6"]
    t = representation_trend(preds).set_index("test_group")
    assert t.loc["FST 5-6", "mean_at_low"] == 6.0 and t.loc["FST 5-6", "mean_at_high"] == pytest.approx(8 / 3)
    ref = mannwhitneyu([4.0, 5.0, 9.0], [2.0, 3.0, 3.0])
    assert t.loc["FST 5-6", "p_pooled"] == pytest.approx(ref.pvalue)


def test_test_groups_compared_at_the_repeat_level():
    # 5 repeats x 2 test groups x 2 images; dark - light per repeat: +1, +2, +3, +4, +5 in A
    # (all positive: exact Wilcoxon p = 2 / 2^5 = 0.0625, its floor) and -1 .. -5 in C (reversed)
    rows = []
    for config, frac, sign in (("A", 0.0, 1), ("C", 1.0, -1)):
        for r in range(5):
            for group, base in (("FST 1-2", 10.0), ("FST 5-6", 10.0 + sign * (r + 1))):
                for extra in (-0.5, 0.5):
                    rows.append(
                        {
                            "method": "vae",
                            "config": config,
                            "dark_fraction": frac,
                            "seed": r,
                            "test_group": group,
                            "recon_mse": base + extra,
                        }
                    )
    preds = pd.DataFrame(rows)
    c = compare_test_groups(preds).set_index("config")
    assert c.loc["A", "p"] == pytest.approx(0.0625) and c.loc["A", "p_floor"] == pytest.approx(0.0625)
    assert c.loc["A", "n_repeats"] == 5 and c.loc["A", "dark_minus_light"] == pytest.approx(3.0)
    assert (c.loc["A", "higher"], c.loc["C", "higher"]) == ("FST 5-6", "FST 1-2")
    text = summary_text(preds)
    line = next(t for t in text if t.startswith("vae, C: MSE"))
    assert "reversed against A: FST 1-2 now has the higher MSE" in line
    assert (
        "Wilcoxon signed-rank over 5 repeats p = 0.062, the smallest possible with 5 repeats being 0.062"
        in line
    )
    assert "pooled images, descriptive only" in line


def test_disease_prevalence_by_hand():
    table = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(8)],
            "condition": [0, 0, 1, 1, 0, 1, 1, 1],
            "fst": pd.array([1, 2, 1, 3, 5, 6, 6, 5], dtype="Int64"),
        }
    )
    cohort = Cohort(table, labels=["condition"], attributes=["fst"], class_names={"condition": ["a", "b"]})
    prev = disease_prevalence(cohort, VAEStudy()).set_index("condition")
    # light (FST 1-2): a 2/3, b 1/3 ; dark (FST 5-6): a 1/4, b 3/4 ; FST 3 dropped
    assert prev.loc["a", "light"] == pytest.approx(2 / 3) and prev.loc["b", "dark"] == pytest.approx(3 / 4)
    assert (prev.loc["b", "n_light"], prev.loc["b", "n_dark"]) == (1, 3)


def test_study_through_the_runner_and_report(tmp_path):

    from fairmed.studies.runner import run_study

    spec = _smoke_spec(
        tmp_path,
        name="vae smoke",
        protocol={"n_test": 12, "n_train": 32},
        val_rows=8,  # ~66 images per group: 12 test, <= 32 fitted, 8 selection rows
    )
    out = tmp_path / "out"
    outcome = run_study(spec, out, jobs=1)
    preds = outcome.predictions
    test = preds[preds["split"] == "test"]
    assert len(outcome.runs) == 3 and len(test) == 3 * 2 * 12 and (test["study"] == "vae smoke").all()
    assert "y_true" not in preds.columns  # a generative kind: the runner audits the per-sample values
    assert (preds.loc[preds["split"] == "examples", "image"].map(len) == 16 * 16 * 3).all()
    written = {p.stem for p in (out / "tables").glob("vae_*.parquet")}
    assert written == {"vae_summary", "vae_compare", "vae_trend", "vae_prevalence", "vae_mse_by_condition"}
    assert len(list((out / "artifacts").glob("vae_examples_*_r0.npz"))) == 6
    prev = pd.read_parquet(out / "tables" / "vae_prevalence.parquet")
    # the test sets are uniform draws of each group: shares sum to one per group and label
    np.testing.assert_allclose(prev.groupby("label")[["light", "dark"]].sum().to_numpy(), 1.0)
    cmp = pd.read_parquet(out / "tables" / "vae_compare.parquet")
    assert set(cmp["value"]) == {"recon_mse", "latent_std", "elbo"} and len(cmp) == 9
    results = outcome.results
    got = results[(results["metric"] == "recon_mse_mean") & (results["group"] == "FST 5-6")]
    assert len(got) == 3  # one per training set (repeat 0)
    a = got[got["config"] == "A (0% dark)"]["value"].iloc[0]
    want = test[(test["config"] == "A (0% dark)") & (test["test_group"] == "FST 5-6")]["recon_mse"].mean()
    assert a == pytest.approx(want)
    html = (out / "index.html").read_text()
    for name in ("vae_mse_boxes", "vae_latent_std_boxes", "vae_examples_fst_1_2", "vae_examples_fst_5_6"):
        assert (out / "figures" / f"{name}.png").is_file()
    assert (
        "Generative fairness" in html and "Example reconstructions" in html and "Disease distribution" in html
    )
    assert "fallback feature network" in html
    again = run_study(spec, out, jobs=1)  # resume: every run file exists
    assert again.executed == [] and len(again.skipped) == 3


def test_builtin_specs_parse():
    from fairmed.errors import SpecError
    from fairmed.studies.spec import load_spec
    from fairmed.studies.vae import expand, study_from_spec, study_of

    assert study_of(load_spec("vae_fairness")).protocol.dark_fractions == [0.0, 0.5, 1.0]
    # the paper profile refuses to run without the ImageNet VGG-19 file (here: not next to the YAML)
    with pytest.raises(SpecError, match=r"vae.perceptual_weights .*vgg19.pth is not a file .*vgg19-dcbb9e9d"):
        study_of(load_spec("vae_fitzpatrick17k"))
    with pytest.raises(SpecError, match="needs ImageNet VGG-19 weights; set vae.perceptual_weights"):
        study_from_spec({"profile": "paper"})
    assert study_from_spec({"profile": "paper", "vae": {"perceptual_weight": 0}}).epochs == 15  # plain VAE
    runs = expand(load_spec("vae_fairness", profile="smoke"))
    assert [r.config for r in runs] == ["A (0% dark)", "B (50% dark)", "C (100% dark)"]
    assert [r.params["dark_fraction"] for r in runs] == [0.0, 0.5, 1.0]
    with pytest.raises(SpecError, match="vae study: epochs"):
        study_from_spec({"profile": "smoke", "epochs": 0})
    with pytest.raises(SpecError, match="profile must be"):
        study_from_spec({"profile": "huge"})


def test_disease_prevalence_on_fitzpatrick17k_metadata(shared_data):
    from fairmed.data.sources import load_source

    csv = shared_data / "fitzpatrick17k" / "fitzpatrick17k.csv"
    cohort = load_source({"kind": "fitzpatrick17k", "csv": str(csv), "missing_images": "drop"})
    prev = disease_prevalence(cohort, VAEStudy())
    assert list(dict.fromkeys(prev["label"])) == ["three_partition_label", "nine_partition_label", "label"]
    np.testing.assert_allclose(prev.groupby("label")[["light", "dark"]].sum().to_numpy(), 1.0)
    # counts per group agree with the raw table: FST 1-2 / 5-6 rows with a fine label
    raw = pd.read_csv(csv)
    fst = raw["fitzpatrick_scale"]
    fine = prev[prev["label"] == "label"]
    assert fine["n_light"].sum() == int((fst.isin([1, 2]) & raw["label"].notna()).sum())
    assert fine["n_dark"].sum() == int((fst.isin([5, 6]) & raw["label"].notna()).sum())
    assert len(fine) == raw.loc[fst.isin([1, 2, 5, 6]), "label"].nunique()


def test_plain_vae_one_training_set(smoke):
    from fairmed.studies.vae import run_repeat

    cohort, study, _, _ = smoke
    plain = study.model_copy(
        update={"vae": study.vae.model_copy(update={"perceptual_weight": 0.0}), "epochs": 1}
    )
    preds = run_repeat(cohort, plain, 0, fractions=[0.5])
    assert (preds["method"] == "vae").all() and (preds["phi"] == "none").all()
    assert preds["config"].unique().tolist() == ["B (50% dark)"] and len(preds) == 2 * study.protocol.n_test


def test_phi_and_pixel_scale_are_recorded(smoke):
    from fairmed.report.sections.vae import axis_label, phi_notes
    from fairmed.studies.vae import run_repeat

    _, study, preds, _ = smoke
    assert (preds["mse_scale"] == 1.0).all() and preds["phi_weights"].isna().all()
    assert (preds["phi_layers"] == study.vae.perceptual_layers).all() and (
        preds["phi_seed"] == study.seed
    ).all()
    assert axis_label(preds, "recon_mse") == "reconstruction MSE (pixels in [0, 1])"
    assert axis_label(preds.assign(mse_scale=255.0), "recon_mse") == "reconstruction MSE (pixels in [0, 255])"
    assert axis_label(preds, "latent_std") == "mean latent std"
    assert phi_notes(preds) == [
        "vae+perceptual: Phi = the fallback feature network (VGG-19 with fixed random weights, seed 0, first 2"
        " conv layers), not ImageNet VGG-19: give vae.perceptual_weights to reproduce the paper's loss."
    ]
    cohort = smoke[0]
    plain = study.model_copy(
        update={
            "vae": study.vae.model_copy(update={"perceptual_weight": 0.0, "mse_scale": 255.0}),
            "epochs": 1,
        }
    )
    p = run_repeat(cohort, plain, 0, fractions=[0.0])
    assert (p["mse_scale"] == 255.0).all() and (p["phi_layers"] == 0).all() and p["phi_seed"].isna().all()
    assert phi_notes(p) == ["vae: Phi = no perceptual loss."]
    # both runs in one table (the runner concatenates them): the label says the scales differ
    both = pd.concat([preds, p], ignore_index=True)
    assert axis_label(both, "recon_mse") == "reconstruction MSE (mixed pixel scales [1.0, 255.0])"


def test_run_repeat_fits_the_draw_and_selects_on_separate_rows(smoke, monkeypatch):
    import fairmed.studies.vae as vae_mod
    from fairmed.data.groups import GroupSpec
    from fairmed.studies.vae_protocol import draw_protocol

    cohort, study, _, _ = smoke
    seen = {}

    class Stop(Exception):
        pass

    def capture(images, select, *args, **kwargs):
        seen["images"], seen["select"] = images, select
        raise Stop

    monkeypatch.setattr(vae_mod, "train_vae", capture)
    with pytest.raises(Stop):
        vae_mod.run_repeat(cohort, study, 0, fractions=[0.5])
    groups = GroupSpec.parse(study.groups).assign(cohort.table).groups
    draw = draw_protocol(groups, study.protocol, study.seed, 0, n_select=study.val_rows)
    pixels = vae_mod.cohort_images(cohort, study.vae.image_size)
    np.testing.assert_array_equal(seen["images"], pixels[draw.train[0.5]])  # all n_train rows are fitted
    np.testing.assert_array_equal(seen["select"], pixels[draw.select[0.5]])
    assert len(seen["images"]) == study.protocol.n_train and len(seen["select"]) == study.val_rows


def test_perceptual_weights_resolve_against_the_spec_folder(tmp_path):
    import yaml

    from fairmed.errors import SpecError
    from fairmed.studies.spec import load_spec
    from fairmed.studies.vae import study_of

    folder = tmp_path / "specs"
    folder.mkdir()
    body = {
        "name": "w",
        "kind": "vae_fairness",
        "profile": "smoke",
        "source": {"kind": "synth", "config": {"n": 100, "size": 16}},
        "groups": ["fst:12-56"],
        "vae": {"perceptual_weights": "weights/vgg19.pth"},
    }
    (folder / "w.yaml").write_text(yaml.safe_dump(body))
    study = study_of(load_spec(folder / "w.yaml"))
    assert study.vae.perceptual_weights == str(folder.resolve() / "weights" / "vgg19.pth")
    body["vae"]["perceptual_weights"] = str(tmp_path / "abs.pth")  # absolute paths stay as given
    (folder / "w.yaml").write_text(yaml.safe_dump(body))
    assert study_of(load_spec(folder / "w.yaml")).vae.perceptual_weights == str(tmp_path / "abs.pth")
    spec = load_spec("vae_fitzpatrick17k")  # the built-in's vgg19.pth sits next to its YAML
    assert spec.settings().vae["perceptual_weights"] == "vgg19.pth"
    with pytest.raises(SpecError, match=str(spec.base_dir) + "/vgg19.pth is not a file"):
        study_of(spec)


def test_paper_profile_source_matches_the_model(tmp_path):
    from fairmed.studies.spec import load_spec
    from fairmed.studies.vae import images_per_group, study_from_spec

    spec = load_spec("vae_fairness", profile="paper")
    weights = tmp_path / "vgg19.pth"
    weights.write_bytes(b"")  # the paper profile's check looks for the file; nothing is loaded here
    study = study_from_spec({"profile": "paper", "vae": {"perceptual_weights": str(weights)}})
    assert spec.source["config"]["size"] == study.vae.image_size == 128
    # 6,000 images with FST weights 1, 1, .2, .2, 1, 1: about 2,727 per group >= 500 + 1,668 + 128
    assert images_per_group(study) == 2296 and spec.source["config"]["n"] * 2 / 4.4 > 2296


def _smoke_spec(tmp_path, **over) -> Path:
    """A tiny vae_fairness spec file (16 px generated images, 1 epoch); ``over`` replaces top-level keys."""
    import yaml

    body = {
        "name": "vae methods",
        "kind": "vae_fairness",
        "profile": "smoke",
        "source": {"kind": "synth", "seed": 0, "config": {"n": 400, "size": 16, "n_classes": 3}},
        "groups": ["fst:12-56"],
        "design": {"repeats": 1},
        "train": {"epochs": 1, "num_threads": 1},
        "protocol": {"n_test": 8, "n_train": 16, "dark_fractions": [0.5]},
        "val_rows": 4,
        "vae": {"perceptual_layers": 1},
        "audit": {"min_group_size": 1, "bootstrap": 20},
        **over,
    }
    path = tmp_path / f"{body['name'].replace(' ', '_')}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _methods_spec(tmp_path, **over) -> Path:
    return _smoke_spec(tmp_path, **{"methods": ["vae", "vae+perceptual"], **over})


def test_methods_compare_plain_and_perceptual_on_the_same_draws(tmp_path):
    from fairmed.studies.runner import run_study

    out = tmp_path / "out"
    outcome = run_study(_methods_spec(tmp_path), out, jobs=1)
    test = outcome.predictions[outcome.predictions["split"] == "test"]
    assert sorted(r.method for r in outcome.runs) == ["vae", "vae+perceptual"]
    by = test.groupby("method")
    assert by["phi"].unique().map(list).to_dict() == {"vae": ["none"], "vae+perceptual": ["random_fallback"]}
    ids = by["id"].apply(lambda s: tuple(sorted(s)))
    assert ids.nunique() == 1 and len(ids.iloc[0]) == 2 * 8  # the same two test sets for both methods
    stems = sorted(p.stem for p in (out / "artifacts").glob("vae_examples_*_r0.npz"))
    assert stems == [
        "vae_examples_vae_A__50__dark__FST_1_2_r0",
        "vae_examples_vae_A__50__dark__FST_5_6_r0",
        "vae_examples_vae_perceptual_A__50__dark__FST_1_2_r0",
        "vae_examples_vae_perceptual_A__50__dark__FST_5_6_r0",
    ]
    for name in ("vae_examples_vae_fst_1_2", "vae_examples_vae_perceptual_fst_5_6", "vae_mse_by_condition"):
        assert (out / "figures" / f"{name}.png").is_file()
    cmp = pd.read_parquet(out / "tables" / "vae_compare.parquet")
    assert sorted(cmp.loc[cmp["value"] == "recon_mse", "method"]) == ["vae", "vae+perceptual"]


def test_methods_errors(tmp_path):
    from fairmed.errors import SpecError
    from fairmed.studies.spec import load_spec
    from fairmed.studies.vae import expand

    spec = load_spec(_methods_spec(tmp_path, vae={"perceptual_weight": 0.0}))
    with pytest.raises(SpecError, match="'vae\\+perceptual' needs vae.perceptual_weight > 0"):
        expand(spec)
    with pytest.raises(SpecError, match="methods"):
        load_spec(_methods_spec(tmp_path, methods=["vae", "gan"]))
    with pytest.raises(SpecError, match="methods must be distinct"):
        load_spec(_methods_spec(tmp_path, methods=["vae", "vae"]))
    runs = expand(load_spec(_methods_spec(tmp_path, protocol={"dark_fractions": [0.0, 1.0]})))
    assert [(r.config, r.method) for r in runs] == [
        ("A (0% dark)", "vae"),
        ("A (0% dark)", "vae+perceptual"),
        ("B (100% dark)", "vae"),
        ("B (100% dark)", "vae+perceptual"),
    ]
