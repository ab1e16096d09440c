"""FairPrune (saliency, masks) and the SCP recipe (pruning order, stopping rules, fine-tuning)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fairmed.mitigate.fairprune import (
    apply_masks,
    fairprune,
    fairprune_masks,
    fisher_diagonal,
    pruned_layers,
    saliency,
    sparsity,
    step_counts,
)
from fairmed.mitigate.pruning import SCPConfig, channel_scores, clone_model, fairprune_model, scp
from fairmed.mitigate.structural import count_channels
from fairmed.models.backbones import build_model
from fairmed.models.spec import ModelSpec
from fairmed.train.config import StrategySpec, TrainConfig
from fairmed.train.data import TensorData
from fairmed.train.strategies import Task, make_strategy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=48, seed=0, size=8) -> TensorData:
    """Images whose red channel tells the group, a label from the green channel."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    x[..., 0] += (g * 150).astype(np.uint8)[:, None, None]
    x[..., 1] += (y * 60).astype(np.uint8)[:, None, None]
    return TensorData(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        g=torch.from_numpy(g),
        ids=np.array([f"s{i}" for i in range(n)]),
        group_names=("light", "dark"),
    )


def _model_and_strategy(train: TensorData, channels=(6, 10)):
    torch.manual_seed(0)
    spec = StrategySpec()
    task = Task.resolve(3, spec)
    model = build_model(ModelSpec(arch="small_cnn", channels=list(channels)), task.n_out)
    return model, make_strategy(spec, task, model.feature_dim, train), task


FAST = TrainConfig(epochs=1, batch_size=16, device="cpu", lr=1e-3, scheduler="none")


def test_fairprune_masks_by_hand():
    lin = nn.Linear(4, 1, bias=False)
    model = nn.Sequential(lin)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 0.0, 1.0]]))
    f_priv = {"0": torch.tensor([[4.0, 1.0, 9.0, 2.0]])}
    f_unpriv = {"0": torch.tensor([[1.0, 1.0, 9.0, 6.0]])}
    # S = 0.5 w^2 H: priv [2, 2, 0, 1], unpriv [0.5, 2, 0, 3]; score (beta 0.5) [1.75, 1, -inf, -0.5]
    torch.testing.assert_close(saliency(model, f_priv)["0"], torch.tensor([[2.0, 2.0, 0.0, 1.0]]))
    masks = fairprune_masks(model, f_priv, f_unpriv, ratio=0.34, beta=0.5)  # 3 alive -> prune 1
    torch.testing.assert_close(masks["0"], torch.tensor([[0.0, 1.0, 0.0, 1.0]]))
    masks = fairprune_masks(model, f_priv, f_unpriv, ratio=0.67, beta=0.5)  # prune 2
    torch.testing.assert_close(masks["0"], torch.tensor([[0.0, 0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="ratio"):
        fairprune_masks(model, f_priv, f_unpriv, ratio=1.0)


def test_fairprune_global_scope_ranks_all_layers_together():
    from fairmed.mitigate.fairprune import global_counts

    a, b = nn.Linear(2, 1, bias=False), nn.Linear(3, 1, bias=False)
    model = nn.Sequential(a, b)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, 1.0]]))
        b.weight.copy_(torch.tensor([[1.0, 0.0, 1.0]]))
    f_priv = {"0": torch.tensor([[8.0, 2.0]]), "1": torch.tensor([[6.0, 9.0, 4.0]])}
    f_unpriv = {"0": torch.tensor([[0.0, 0.0]]), "1": torch.tensor([[0.0, 0.0, 0.0]])}
    # scores (beta 0): layer 0 [4, 1], layer 1 [3, -inf (zero weight), 2]: the top 2 are 4 (layer 0), 3 (layer 1)
    assert global_counts(model, f_priv, f_unpriv, 0.0, 2) == {"0": 1, "1": 1}
    assert global_counts(model, f_priv, f_unpriv, 0.0, 3) == {"0": 1, "1": 2}
    assert global_counts(model, f_priv, f_unpriv, 0.0, 0) == {"0": 0, "1": 0}


def _tiny_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(12, 4),
        nn.ReLU(),
        nn.Linear(4, 3),
    )
    net[1].running_mean.uniform_(-0.2, 0.2)
    net[1].running_var.uniform_(0.5, 1.5)
    return net


def _direct_fisher(net: nn.Module, batches) -> dict[str, torch.Tensor]:
    """Mean over samples of the squared gradient of each sample's own loss, one sample at a time."""
    net.eval()
    layers = {"0": net[0], "5": net[5], "7": net[7]}
    out = {n: torch.zeros_like(m.weight) for n, m in layers.items()}
    count = 0
    for x, y in batches:
        for i in range(len(x)):
            loss = nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1])
            grads = torch.autograd.grad(loss, [m.weight for m in layers.values()])
            for n, g in zip(layers, grads):
                out[n] += g.double() ** 2
            count += 1
    return {n: (v / count).float() for n, v in out.items()}


@pytest.mark.parametrize("vectorize", [True, False])
def test_fisher_is_the_mean_squared_per_sample_gradient(vectorize, monkeypatch):
    net = _tiny_net()
    gen = torch.Generator().manual_seed(2)
    batches = [
        (torch.randn(n, 2, 5, 5, generator=gen), torch.randint(0, 3, (n,), generator=gen)) for n in (5, 3)
    ]
    monkeypatch.setattr("fairmed.mitigate.fairprune.GRAD_FLOATS", 200)  # vmap in chunks of 1-2 samples
    if vectorize:  # the vmap path must not fall back to the loop on this network
        monkeypatch.setattr("fairmed.mitigate.fairprune._looped_sq_grads", None)
    got = fisher_diagonal(net, batches, vectorize=vectorize)
    expected = _direct_fisher(net, batches)
    assert set(got) == {"0", "5", "7"}
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-9)
    assert all(p.grad is None for p in net.parameters())


def test_fisher_does_not_vanish_when_the_batch_gradient_does():
    # BCE on one weight w = 0: sample gradients (sigmoid(0) - y) x = -0.5 and +0.5 cancel in the
    # batch mean, the Fisher is their mean square 0.25
    lin = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(lin.weight)
    batch = (torch.tensor([[1.0], [1.0]]), torch.tensor([1, 0]))
    fisher = fisher_diagonal(nn.Sequential(lin), [batch])["0"]
    torch.testing.assert_close(fisher, torch.tensor([[0.25]]))


def test_step_counts_and_spared_layers():
    assert step_counts(100, 0.05, 5) == [1, 1, 1, 1, 1]
    assert step_counts(101, 0.07, 3) == [2, 2, 3] and sum(step_counts(101, 0.07, 3)) == 7
    assert step_counts(10, 0.05, 2) == [0, 0]
    net = _tiny_net()
    assert pruned_layers(net) == ["5"] and pruned_layers(net, spare_ends=False) == ["0", "5", "7"]


def test_fairprune_steps_reestimate_and_spare_the_ends():
    net = _tiny_net()
    gen = torch.Generator().manual_seed(4)
    data = [
        (torch.randn(6, 2, 5, 5, generator=gen), torch.randint(0, 3, (6,), generator=gen)) for _ in range(2)
    ]
    seen = []

    def draw(group):
        def batches(step):
            seen.append((group, step))
            return [data[group]]

        return batches

    masks = fairprune(net, draw(0), draw(1), ratio=0.25, beta=0.3, steps=3)
    assert set(masks) == {"5"} and int((masks["5"] == 0).sum()) == 12  # int(0.25 * 48)
    assert seen == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]  # fresh saliencies every step
    assert not hasattr(net[0], "weight_prune_mask") and not hasattr(net[7], "weight_prune_mask")
    assert int((net[5].weight == 0).sum()) == 12
    one_shot = fairprune(_tiny_net(), data[:1], data[1:], ratio=0.25, steps=1, spare_ends=False)
    assert {n: int((m == 0).sum()) for n, m in one_shot.items()} == {"0": 13, "5": 12, "7": 3}
    # scope="global": int(0.25 * (54 + 48 + 12)) = 28 weights in all, shared by score across the layers
    pooled = fairprune(_tiny_net(), data[:1], data[1:], ratio=0.25, steps=1, spare_ends=False, scope="global")
    assert sum(int((m == 0).sum()) for m in pooled.values()) == 28
    with pytest.raises(ValueError, match="scope must be 'layer' or 'global'"):
        fairprune(_tiny_net(), data[:1], data[1:], scope="all")


def test_fairprune_on_a_cnn_zeroes_the_ratio_and_survives_finetuning():
    train = _data()
    model, strategy, task = _model_and_strategy(train)
    loss = lambda logits, y: task.per_sample(logits, y).mean()  # noqa: E731
    pruned, masks = fairprune_model(
        model, train, privileged=0, ratio=0.2, beta=0.3, loss_fn=loss, max_batches=1
    )
    assert sparsity(model) == 0.0  # the original is untouched
    assert list(masks) == ["features.4"]  # the first conv and the classifier are spared
    conv = pruned.features[4]
    assert int((masks["features.4"] == 0).sum()) == int((conv.weight == 0).sum()) == int(0.2 * 540)
    assert sparsity(pruned) == pytest.approx(108 / (162 + 540 + 30))
    from fairmed.train.loop import fit

    fit(pruned, strategy, train, _data(16, seed=1), FAST)
    assert sparsity(pruned) == pytest.approx(108 / 732)  # the zeros stay zeros
    again = clone_model(pruned)
    apply_masks(again, {n: torch.ones_like(m) for n, m in masks.items()})  # combine with old masks
    assert sparsity(again) == sparsity(pruned)


def test_scp_prunes_lowest_scores_and_stops_on_accuracy():
    train, val = _data(), _data(24, seed=2)
    model, strategy, _ = _model_and_strategy(train)
    config = SCPConfig(ratio=0.2, th_acc=0.1, th_fair=-1.0, max_iter=5, score_batch_size=16)
    scripted = iter(
        [
            {"f1": 0.8, "eodd": 0.3},
            {"f1": 0.78, "eodd": 0.2},
            {"f1": 0.75, "eodd": 0.1},
            {"f1": 0.6, "eodd": 0.05},
        ]
    )
    first_scores = channel_scores(model, train, config)
    result = scp(model, strategy, train, val, FAST, lambda m: next(scripted), config)
    h = result.history
    assert list(h["iteration"]) == [0, 1, 2, 3]
    assert list(h["channels"]) == [10, 8, 6, 4]
    assert list(h["accepted"]) == [True, True, True, False]
    assert result.stop.startswith("accuracy drop 0.2000 > th_acc")
    assert count_channels(result.model)["features.4"] == 6  # iteration 3 rolled back
    assert count_channels(model)["features.4"] == 10  # the input model is untouched
    s0 = result.scores[result.scores["iteration"] == 0]
    np.testing.assert_allclose(s0["score"], first_scores, rtol=1e-6)
    removed_first = set(np.argsort(first_scores, kind="stable")[:2])
    final = result.scores[result.scores["iteration"] == -1]
    assert len(final) == 6 and not removed_first & set(final["channel"])


def test_scp_stops_when_fairness_stalls_and_respects_max_iter():
    train, val = _data(), _data(24, seed=2)
    model, strategy, _ = _model_and_strategy(train)
    config = SCPConfig(layer=0, ratio=0.34, th_acc=1.0, th_fair=0.05, max_iter=3, score_batch_size=16)
    scripted = iter([{"f1": 0.8, "eodd": 0.3}, {"f1": 0.8, "eodd": 0.2}, {"f1": 0.8, "eodd": 0.18}])
    result = scp(model, strategy, train, val, FAST, lambda m: next(scripted), config)
    assert result.stop.startswith("fairness gain 0.0200 < th_fair 0.05")
    assert list(result.history["channels"]) == [6, 4, 2]
    assert count_channels(result.model)["features.0"] == 4
    scripted = iter([{"f1": 0.8, "eodd": 0.3 - 0.1 * k} for k in range(3)])
    result = scp(
        model, strategy, train, val, FAST, lambda m: next(scripted), config.model_copy(update={"max_iter": 2})
    )
    assert result.stop == "max_iter (2)" and list(result.history["accepted"]) == [True, True, True]
    assert count_channels(result.model)["features.0"] == 2


def test_scp_on_the_masked_resnet18_last_conv_skips_pruned_channels():
    train = _data(n=32, size=16)
    torch.manual_seed(0)
    spec = StrategySpec()
    task = Task.resolve(3, spec)
    model = build_model(ModelSpec(arch="resnet18"), task.n_out)
    strategy = make_strategy(spec, task, model.feature_dim, train)
    cfg = SCPConfig(ratio=0.01, max_iter=2, th_acc=1.0, th_fair=-1.0, score_batch_size=16)
    res = scp(model, strategy, train, train, FAST, lambda m: {"f1": 0.5, "eodd": 0.1}, cfg)
    assert res.layer == "features.layer4.1.conv2"
    assert res.history["channels"].tolist() == [512, 507, 502]  # round(1% of 512) = 5 per step
    first = res.scores[res.scores["iteration"] == 0]
    second = res.scores[res.scores["iteration"] == 1]
    gone = sorted(set(first["channel"]) - set(second["channel"]))
    assert len(gone) == 5 and len(second) == 507  # the masked channels are not scored again
    assert count_channels(res.model)["features.layer4.1.conv2"] == 502
