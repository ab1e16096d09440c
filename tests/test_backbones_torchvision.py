"""DenseNet-121 and any torchvision classification model by name: feature width, local weights, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import models as tvm

from fairmed.data.synth import SynthConfig, generate
from fairmed.errors import SpecError
from fairmed.models.backbones import build_model
from fairmed.models.spec import TORCHVISION_ARCHS, ModelSpec
from fairmed.train import fit_predict


def test_densenet121_features_and_local_weights(tmp_path):
    reference = tvm.densenet121(weights=None)
    path = tmp_path / "densenet121.pt"
    torch.save(reference.state_dict(), path)  # the classifier is dropped on loading
    model = build_model(ModelSpec(arch="densenet121", weights=path), n_out=1)
    assert model.feature_dim == reference.classifier.in_features == 1024
    assert torch.equal(model.features.features.conv0.weight, reference.features.conv0.weight)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 1)


def test_any_torchvision_model_by_name_trains(tmp_path):
    reference = tvm.mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pt"
    torch.save({"state_dict": reference.state_dict()}, path)
    model = build_model(ModelSpec(arch="mobilenet_v3_small", weights=path), n_out=3)
    assert model.feature_dim == reference.classifier[3].in_features  # the last Linear's input width
    c = generate(SynthConfig(n=48, size=32), seed=0)
    train, val, test = c.subset(np.arange(32)), c.subset(np.arange(32, 40)), c.subset(np.arange(40, 48))
    preds = fit_predict(
        train, val, test, model={"arch": "mobilenet_v3_small", "image_size": 32}, strategy="domainind",
        config={"epochs": 1, "batch_size": 16}, groups="fst:123-456", seed=0,
    )  # fmt: skip
    assert len(preds) == 16 and np.isfinite(preds["y_score"]).all()


@pytest.mark.parametrize("arch", ["nosuchnet", "Res-Net", "squeezenet1_0"])
def test_unknown_architecture_is_one_line(arch):
    with pytest.raises(SpecError, match="not a known architecture"):
        ModelSpec(arch=arch)


def test_listed_torchvision_archs_are_torchvision_models():
    """The list a spec is checked against (without torch) names models torchvision builds."""
    assert set(TORCHVISION_ARCHS) <= set(tvm.list_models(module=tvm))
    assert "densenet121" in TORCHVISION_ARCHS and "efficientnet_b0" in TORCHVISION_ARCHS
