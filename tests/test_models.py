"""Backbones, local pretrained weights, and the frozen-feature cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import models as tvm

import fairmed.models.features as features_mod
from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import DataError, SpecError
from fairmed.models import ModelSpec, build_model
from fairmed.models.backbones import count_parameters, image_batch
from fairmed.models.features import array_hash, cached_features, embed_cohort
from fairmed.train import fit_predict


def test_small_cnn_structure_is_prunable():
    model = build_model(ModelSpec(), n_out=1)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert isinstance(model.features[1], nn.BatchNorm2d) and isinstance(model.head[-1], nn.Linear)
    assert 90_000 < count_parameters(model) < 100_000
    x = torch.zeros(2, 3, 32, 32)
    assert model(x).shape == (2, 1) and model.features(x).shape == (2, model.feature_dim)


@pytest.mark.parametrize("arch,dim", [("resnet18", 512), ("vgg11", 4096)])
def test_torchvision_backbones_replace_the_head(arch, dim):
    model = build_model(ModelSpec(arch=arch), n_out=3)
    assert model.feature_dim == dim and model.head[-1].out_features == 3
    assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


def test_local_resnet18_weights_load_with_weights_only(tmp_path):
    torch.manual_seed(0)
    reference = tvm.resnet18(weights=None)  # a torchvision state_dict with its 1000-class fc
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(ModelSpec(arch="resnet18", weights=path), n_out=1)
    assert torch.equal(model.features.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.features.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert model.head[-1].out_features == 1
    # wrapped ("state_dict" key, DataParallel "module." prefixes) files load too
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, wrapped)
    again = build_model(ModelSpec(arch="resnet18", weights=wrapped), n_out=1)
    assert torch.equal(again.features.conv1.weight, reference.conv1.weight)


def test_mismatched_weights_are_one_line_naming_the_file(tmp_path):
    path = tmp_path / "other.pth"
    state = tvm.resnet18(weights=None).state_dict()
    state["extra.weight"] = state.pop("conv1.weight")  # a renamed layer: one missing, one unexpected
    torch.save(state, path)
    with pytest.raises(DataError) as err:
        build_model(ModelSpec(arch="resnet18", weights=path), n_out=1)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "resnet18" in msg
    assert "missing keys conv1.weight" in msg and "unexpected keys extra.weight" in msg
    state["conv1.weight"] = torch.zeros(8, 3, 7, 7)
    del state["extra.weight"]
    torch.save(state, path)
    with pytest.raises(DataError, match=r"shape of conv1.weight is \(8, 3, 7, 7\), expected \(64, 3, 7, 7\)"):
        build_model(ModelSpec(arch="resnet18", weights=path), n_out=1)
    with pytest.raises(DataError, match="weights file not found"):
        build_model(ModelSpec(arch="resnet18", weights=tmp_path / "none.pth"), n_out=1)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read weights"):
        build_model(ModelSpec(arch="resnet18", weights=junk), n_out=1)


def test_image_batch_normalises_and_flips():
    px = torch.randint(0, 256, (4, 5, 6, 3), dtype=torch.uint8)
    x = image_batch(px)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (px.permute(0, 3, 1, 2).float() / 255 - mean) / std
    assert x.shape == (4, 3, 5, 6) and torch.allclose(x, expected, atol=1e-6)
    flipped = image_batch(px, augment=True, generator=torch.Generator().manual_seed(0))
    for i in range(4):  # each image is itself, or flipped horizontally and/or vertically
        options = [expected[i], expected[i].flip(2), expected[i].flip(1), expected[i].flip(1).flip(2)]
        assert any(torch.allclose(flipped[i], o, atol=1e-6) for o in options)


def test_feature_cache_is_reused(tmp_path, monkeypatch):
    cohort = generate(SynthConfig(n=40, size=16), seed=0)
    spec = ModelSpec(arch="small_cnn", image_size=16, channels=[4, 8], frozen=True)
    calls = []
    real = features_mod.extract_features
    monkeypatch.setattr(features_mod, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = cached_features(cohort, spec, tmp_path)
    second = cached_features(cohort, spec, tmp_path)
    assert len(calls) == 1 and first.shape == (40, 8) and np.array_equal(first, second)
    assert len(list((tmp_path / "features").glob("*.npy"))) == 1
    # other pixels, another size or other ids -> another key
    cached_features(cohort.subset(np.arange(20)), spec, tmp_path)
    cached_features(cohort, spec.model_copy(update={"image_size": 8}), tmp_path)
    assert len(calls) == 3
    embedded = embed_cohort(cohort, spec, tmp_path)
    assert embedded.pixel_source == "embeddings" and len(calls) == 3
    assert array_hash(cohort.images) != array_hash(cohort.images[::-1])


def test_frozen_backbone_runs_train_a_head(tmp_path):
    c = generate(SynthConfig(n=300, size=16), seed=2)
    parts = c.subset(np.arange(200)), c.subset(np.arange(200, 250)), c.subset(np.arange(250, 300))
    model = {"arch": "small_cnn", "image_size": 16, "channels": [8, 16], "frozen": True, "hidden": 32}
    cfg = {"epochs": 2, "cache_dir": tmp_path}
    preds = fit_predict(*parts, model=model, strategy="adversarial", config=cfg, groups="sex", seed=0)
    assert len(preds) == 100 and preds["y_score"].between(0, 1).all()
    assert len(list((tmp_path / "features").glob("*.npy"))) == 3  # train, val, test


def test_spec_validation():
    with pytest.raises(SpecError, match="frozen"):
        ModelSpec(arch="mlp", frozen=True)
