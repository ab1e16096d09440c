"""Residual VAE and its losses: closed forms, a direct perceptual computation, gradients, outputs."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

from fairmed.errors import SpecError
from fairmed.models.perceptual import FeatureNet, load_phi, perceptual_loss
from fairmed.models.vae import (
    VAE,
    VAEConfig,
    evaluate,
    gaussian_nll,
    kl_divergence,
    reparameterize,
    vae_loss,
)


def test_kl_matches_closed_form_by_hand_and_torch_distributions():
    # one sample, two latent units: mu = (1, 0), sigma^2 = (1, e^-2)  (logvar = (0, -2))
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, -2.0]])
    # 1/2 [(1 + 1 - 0 - 1) + (0 + e^-2 + 2 - 1)] = 1/2 (2 + e^-2)
    expected = 0.5 * (2.0 + math.exp(-2.0))
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected, rel=1e-6)

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 4, 3, 3, generator=g)
    logvar = torch.randn(5, 4, 3, 3, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    peer = torch.distributions.kl_divergence(q, p).flatten(1).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), peer, rtol=1e-5, atol=1e-5)


def test_gaussian_nll_matches_normal_log_prob():
    g = torch.Generator().manual_seed(1)
    x, x_hat = torch.rand(3, 3, 4, 4, generator=g), torch.rand(3, 3, 4, 4, generator=g)
    peer = -torch.distributions.Normal(x_hat, math.sqrt(0.3)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_nll(x, x_hat, 0.3), peer, rtol=1e-5, atol=1e-4)


def test_perceptual_loss_matches_direct_computation_on_tiny_network():
    torch.manual_seed(0)
    body = nn.Sequential(
        nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU()
    )
    phi = FeatureNet(body, taps=[1, 3], mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x, x_hat = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    got = perceptual_loss(phi, x, x_hat)
    direct = torch.zeros(2)
    for i in range(2):
        a1, b1 = body[1](body[0](x[i : i + 1])), body[1](body[0](x_hat[i : i + 1]))
        a2, b2 = body[3](body[2](a1)), body[3](body[2](b1))
        direct[i] = ((a1 - b1) ** 2).sum() / (2 * 2 * 6 * 6) + ((a2 - b2) ** 2).sum() / (2 * 4 * 3 * 3)
    torch.testing.assert_close(got, direct, rtol=1e-5, atol=1e-6)
    assert torch.all(perceptual_loss(phi, x, x) == 0)
    assert not any(p.requires_grad for p in phi.parameters())
    phi.train()
    assert not phi.training  # Phi stays frozen


def test_reparameterisation_gradients_flow_to_mu_and_logvar():
    mu = torch.zeros(4, 2, 2, 2, requires_grad=True)
    logvar = torch.zeros(4, 2, 2, 2, requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    (z**2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0
    # d/dmu sum z^2 = 2z ; d/dlogvar = 2 z * eps * exp(logvar/2) / 2 = z * eps at logvar = 0 (and mu = 0: z = eps)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mu.grad, 2 * eps)
    torch.testing.assert_close(logvar.grad, eps * eps)


def test_shapes_latent_and_gradients_reach_encoder_and_decoder():
    cfg = VAEConfig(image_size=16, channels=[8, 16], latent_channels=4, perceptual_weight=0)
    model = VAE(cfg)
    x = torch.rand(3, 3, 16, 16)
    x_hat, mu, logvar = model(x)
    assert x_hat.shape == x.shape and mu.shape == (3, 4, 4, 4) == logvar.shape
    assert cfg.latent_shape == (4, 4, 4)
    loss, parts = vae_loss(model, x)
    loss.backward()
    assert set(parts) == {"nll", "kl", "loss"}
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert model.decoder[-1].weight.grad.abs().sum() > 0


def test_perceptual_term_is_added_with_its_weight():
    torch.manual_seed(0)
    phi = FeatureNet(nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU()), taps=[1])
    x = torch.rand(4, 3, 16, 16)
    base = VAE(VAEConfig(image_size=16, channels=[8], latent_channels=2, perceptual_weight=0)).eval()
    heavy = VAE(VAEConfig(image_size=16, channels=[8], latent_channels=2, perceptual_weight=3.0)).eval()
    heavy.load_state_dict(base.state_dict())
    l0, p0 = vae_loss(base, x, phi, torch.Generator().manual_seed(5))
    l3, p3 = vae_loss(heavy, x, phi, torch.Generator().manual_seed(5))
    assert "perceptual" not in p0 and p3["perceptual"] > 0
    assert l3.item() == pytest.approx(l0.item() + 3.0 * p3["perceptual"], rel=1e-5)


def test_evaluate_per_sample_outputs_and_scale():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    cfg = VAEConfig(image_size=16, channels=[8], latent_channels=2, perceptual_weight=0)
    model = VAE(cfg)
    out = evaluate(model, images, batch_size=2, return_recon=True)
    assert out["recon_mse"].shape == (5,) and out["latent_std"].shape == (5,) and out["elbo"].shape == (5,)
    # recon_mse is the [0,1]-scale MSE of the decoder mean: recompute from the returned reconstruction
    direct = ((images / 255.0 - out["recon"] / 255.0) ** 2).reshape(5, -1).mean(1)
    np.testing.assert_allclose(out["recon_mse"], direct, atol=2e-3)
    assert np.all(out["latent_std"] > 0)
    scaled = VAE(cfg.model_copy(update={"mse_scale": 255.0}))
    scaled.load_state_dict(model.state_dict())
    np.testing.assert_allclose(evaluate(scaled, images)["recon_mse"], out["recon_mse"] * 255**2, rtol=1e-5)
    again = evaluate(model, images, batch_size=5)
    np.testing.assert_allclose(again["elbo"], evaluate(model, images, batch_size=5)["elbo"])


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 0.5 + 0.25
    model = VAE(VAEConfig(image_size=16, channels=[8], latent_channels=4, perceptual_weight=0, obs_var=0.5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss, _ = vae_loss(model, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    const = 0.5 * 3 * 16 * 16 * math.log(2 * math.pi * model.config.obs_var)  # the likelihood's constant
    assert loss.item() - const < 0.5 * (first - const)


def test_config_errors():
    with pytest.raises(SpecError, match="divisible"):
        VAEConfig(image_size=20, channels=[8, 16, 32])


def test_phi_fallback_is_announced_and_recorded(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="fairmed.models.perceptual"):
        phi, info = load_phi(None, n_layers=3, seed=7)
    assert "no VGG-19 weights" in caplog.text
    assert info.source == "random_fallback" and info.seed == 7 and info.n_layers == 3
    # the paper's Phi_l: each conv layer's output before its ReLU; post_relu taps the ReLU after it
    assert len(phi.taps) == 3 and all(isinstance(phi.body[t], nn.Conv2d) for t in phi.taps)
    assert phi.taps == [0, 2, 5] and info.tap == "pre_relu"
    post, post_info = load_phi(None, n_layers=3, seed=7, tap="post_relu")
    assert post.taps == [1, 3, 6] and all(isinstance(post.body[t], nn.ReLU) for t in post.taps)
    assert post_info.tap == "post_relu"
    phi2, _ = load_phi(None, n_layers=3, seed=7)
    x = torch.rand(1, 3, 16, 16)
    for a, b in zip(phi(x), phi2(x), strict=True):
        torch.testing.assert_close(a, b)  # fixed random weights: same seed, same Phi
    with pytest.raises(SpecError, match="not a file"):
        load_phi(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    with pytest.raises(SpecError, match="not a torchvision vgg19"):
        load_phi(bad)


def test_elbo_is_minus_the_loss_and_the_audit_reads_it_higher_is_better():
    """``evaluate`` writes the ELBO itself (= -loss of the plain VAE at the same z), so the metrics'
    direction table must call it higher-is-better: its ``worst`` group is the one with the LOWER ELBO."""
    import pandas as pd

    from fairmed.metrics import audit
    from fairmed.metrics.groups import direction
    from fairmed.models.vae import to_tensor

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    model = VAE(VAEConfig(image_size=16, channels=[8], latent_channels=2, perceptual_weight=0)).eval()
    elbo = evaluate(model, images, batch_size=6, seed=4)["elbo"]
    loss, _ = vae_loss(model, to_tensor(images), None, torch.Generator().manual_seed(4))
    assert elbo.mean() == pytest.approx(-loss.item(), rel=1e-5)

    assert direction("elbo") is True and direction("elbo_mean") is True
    assert direction("recon_mse") is False
    preds = pd.DataFrame(
        {"elbo": [-10.0, -12.0, -30.0, -34.0], "recon_mse": [0.1, 0.2, 0.5, 0.7], "sex": ["f", "f", "m", "m"]}
    )
    res = audit(preds, ["sex"], values=["elbo", "recon_mse"], bootstrap=0, min_group_size=1).to_frame()
    worst = res[res["group"] == "worst"].set_index("metric")["value"]
    assert worst["elbo_mean"] == pytest.approx(-32.0)  # group m: the lower ELBO is the worse fit
    assert worst["recon_mse_mean"] == pytest.approx(0.6)  # group m: the higher error
