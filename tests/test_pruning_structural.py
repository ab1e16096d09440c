"""Structural channel pruning gives the same outputs as zeroing the channels, on every site."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fairmed.mitigate.structural import (
    count_channels,
    find_site,
    keep_zeros,
    mask_channels,
    prunable_sites,
    prune_channels,
)
from fairmed.models.backbones import build_model, count_parameters
from fairmed.models.spec import ModelSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine parameters, so a wrong slice shows."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def _check_equivalence(model: nn.Module, x: torch.Tensor, layer, fraction: float = 0.3) -> None:
    torch.manual_seed(0)
    model.eval()
    site = find_site(model, layer)
    n = site.channels
    remove = torch.randperm(n)[: max(1, int(fraction * n))].tolist()
    handle = mask_channels(site, remove)
    with torch.no_grad():
        masked = model(x)
    handle.remove()
    before = count_parameters(model)
    keep = prune_channels(model, site, remove)
    with torch.no_grad():
        pruned = model(x)
    assert len(keep) == n - len(remove)
    assert site.conv.out_channels == n - len(remove) == site.conv.weight.shape[0]
    assert count_parameters(model) < before
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layer", [0, 1, -1])
def test_small_cnn_pruned_equals_masked(layer):
    model = build_model(ModelSpec(arch="small_cnn", channels=[8, 12, 16]), n_out=3)
    _randomize_bn(model)
    _check_equivalence(model, torch.randn(4, 3, 16, 16), layer)


def test_small_cnn_sites_and_counts():
    model = build_model(ModelSpec(arch="small_cnn", channels=[8, 12, 16]), n_out=3)
    sites = prunable_sites(model)
    assert [s.name for s in sites] == ["features.0", "features.4", "features.8"]
    assert sites[-1].consumer is model.head[1] and sites[-1].per_channel == 1
    assert all(s.bn is not None for s in sites)
    prune_channels(model, -1, [0, 5])
    assert count_channels(model) == {"features.0": 8, "features.4": 12, "features.8": 14}
    assert model.head[1].in_features == 14 and model.feature_dim == 14


def test_vgg11_pruned_equals_masked():
    model = build_model(ModelSpec(arch="vgg11"), n_out=4)  # one build (129 M parameters) for both sites
    site = find_site(model, -1)
    assert site.name == "features.0.18" and site.per_channel == 49 and site.bn is None
    assert isinstance(site.consumer, nn.Linear) and site.consumer.in_features == 512 * 49
    x = torch.randn(2, 3, 32, 32)
    _check_equivalence(model, x, -1, fraction=0.05)
    assert site.consumer.in_features == (512 - 25) * 49
    _check_equivalence(model, x, "features.0.0", fraction=0.05)


@pytest.mark.parametrize("layer", [0, "features.layer4.1.conv1"])
def test_resnet18_pruned_equals_masked(layer):
    model = build_model(ModelSpec(arch="resnet18"), n_out=2)
    sites = prunable_sites(model)
    # per block conv1 (sliced) and conv2 (masked: it adds into the residual); the last conv is layer4.1.conv2
    assert len(sites) == 16 and [s.name for s in sites[-2:]] == [
        "features.layer4.1.conv1",
        "features.layer4.1.conv2",
    ]
    assert sites[-1].masked and not sites[-2].masked
    _randomize_bn(model)
    _check_equivalence(model, torch.randn(2, 3, 32, 32), layer, fraction=0.1)


def test_resnet18_last_conv_is_masked_in_place_and_stays_zero_through_training():
    model = build_model(ModelSpec(arch="resnet18"), n_out=2)
    _randomize_bn(model)
    model.eval()
    site = find_site(model, -1)
    assert site.name == "features.layer4.1.conv2" and site.channels == 512
    x = torch.randn(2, 3, 32, 32)
    handle = mask_channels(site, [3, 7, 100])
    with torch.no_grad():
        reference = model(x)  # the channels zeroed after bn2, before the residual sum
    handle.remove()
    keep = prune_channels(model, site, [3, 7, 100])
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=1e-4)
    assert len(keep) == 509 and site.channels == 509 and site.conv.out_channels == 512  # shapes unchanged
    assert 7 not in site.live().tolist() and count_channels(model)["features.layer4.1.conv2"] == 509
    prune_channels(model, site, [8])  # a second step: earlier channels stay pruned
    assert site.channels == 508 and site.live()[:8].tolist() == [0, 1, 2, 4, 5, 6, 9, 10]
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-5)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3, 32, 32)).sum().backward()
        opt.step()
    for c in (3, 7, 8, 100):
        assert torch.all(site.conv.weight[c] == 0) and site.bn.weight[c] == 0 and site.bn.bias[c] == 0
    assert torch.any(site.conv.weight[0] != 0)


def test_bad_requests():
    model = build_model(ModelSpec(arch="small_cnn", channels=[4, 4]), n_out=2)
    with pytest.raises(IndexError, match="out of range"):
        find_site(model, 5)
    with pytest.raises(KeyError, match="prunable: features.0, features.4"):
        find_site(model, "head")
    with pytest.raises(IndexError, match="channel index"):
        prune_channels(model, 0, [4])
    with pytest.raises(ValueError, match="all 4 channels"):
        prune_channels(model, 0, [0, 1, 2, 3])


def test_weight_masks_follow_the_slices_and_keep_zeros_through_training():
    model = build_model(ModelSpec(arch="small_cnn", channels=[6, 6]), n_out=2)
    conv = model.features[4]
    mask = (torch.rand_like(conv.weight) > 0.5).float()
    conv.weight.data.mul_(mask)
    conv.register_buffer("weight_prune_mask", mask)
    keep_zeros(conv)
    keep = prune_channels(model, 0, [1, 3])  # slices conv's input dim and its mask
    assert conv.weight_prune_mask.shape == conv.weight.shape
    torch.testing.assert_close(conv.weight_prune_mask, mask[:, keep])
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3, 8, 8)).sum().backward()
        opt.step()
    assert torch.all(conv.weight[conv.weight_prune_mask == 0] == 0)
    assert torch.any(conv.weight[conv.weight_prune_mask == 1] != 0)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(2, 6), min_size=1, max_size=3),
    st.integers(0, 2),
    st.data(),
)
def test_property_any_site_any_subset(widths, which, data):
    model = build_model(ModelSpec(arch="small_cnn", channels=widths), n_out=2)
    _randomize_bn(model)
    model.eval()
    site = prunable_sites(model)[which % len(widths)]
    n = site.channels
    remove = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - 1))
    x = torch.randn(3, 3, 8, 8)
    handle = mask_channels(site, remove)
    with torch.no_grad():
        masked = model(x)
    handle.remove()
    prune_channels(model, site, remove)
    with torch.no_grad():
        torch.testing.assert_close(model(x), masked, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["multitask", "adversarial"])
@pytest.mark.parametrize("aux_hidden", [0, 5])
def test_strategy_heads_follow_the_last_small_cnn_site(name, aux_hidden):
    """Pruning the conv that feeds the shared features slices the strategy's group head too."""
    import numpy as np

    from fairmed.train.config import StrategySpec, TrainConfig
    from fairmed.train.data import TensorData
    from fairmed.train.loop import fit
    from fairmed.train.strategies import Task, make_strategy

    rng = np.random.default_rng(0)
    n = 16
    data = TensorData(
        x=torch.from_numpy(rng.integers(0, 255, (n, 8, 8, 3)).astype(np.uint8)),
        y=torch.from_numpy(rng.integers(0, 3, n)),
        g=torch.from_numpy(np.arange(n) % 2),
        ids=np.array([f"s{i}" for i in range(n)]),
        group_names=("light", "dark"),
    )
    torch.manual_seed(0)
    spec = StrategySpec(name=name, aux_hidden=aux_hidden)
    task = Task.resolve(3, spec)
    model = build_model(ModelSpec(arch="small_cnn", channels=[6, 10]), task.n_out)
    strategy = make_strategy(spec, task, model.feature_dim, data)
    _randomize_bn(model)
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    site, remove = find_site(model, -1), [0, 3, 7]

    def outputs():
        with torch.no_grad():
            z = model.features(x)
            return model.head(z), strategy.group_head(strategy.group_input(z))

    handle = mask_channels(site, remove)
    masked = outputs()
    handle.remove()
    prune_channels(model, site, remove, heads=[strategy])
    pruned = outputs()
    assert model.feature_dim == strategy.feature_dim == 7
    for got, want in zip(pruned, masked):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    config = TrainConfig(epochs=1, batch_size=8, device="cpu", lr=1e-3, scheduler="none")
    fit(model, strategy, data, data, config)  # a training step on the narrowed features runs
    assert model.head[1].in_features == 7


def test_feature_readers_picks_each_heads_first_linear():
    from fairmed.mitigate.structural import feature_readers

    owner = nn.Module()
    owner.a = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)
    )  # second Linear reads the hidden layer
    owner.b = nn.Linear(4, 3)
    owner.c = nn.Linear(5, 3)  # another width: not a reader
    assert feature_readers(owner, 4) == [owner.a[0], owner.b]
