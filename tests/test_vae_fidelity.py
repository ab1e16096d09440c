"""The VAE study's paper settings: loss-term logging per epoch, the inert-perceptual warning,
select=last, and the paper profile's likelihood and weights rule."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from fairmed.studies.vae import VAEObjective, VAEStudy, study_from_spec, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_term_log_means_by_hand():
    obj = VAEObjective(
        image_numel=3, latent_numel=1, obs_var=0.5, beta=2.0, perceptual_weight=0.0, image_shape=(3, 1, 1)
    )
    # two rows: x = 0, x_hat = (1, 0, 0) and (1, 1, 0); mu = 0, logvar = 0 -> KL 0
    x = torch.zeros(2, 3)
    x_hat = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    packed = torch.cat([x, x_hat, torch.zeros(2, 1), torch.zeros(2, 1)], 1).requires_grad_(True)
    obj.per_sample(packed)
    obj.per_sample(packed.detach())  # the validation pass closes the epoch
    obj.per_sample(packed.detach())  # a second detached call opens nothing
    rows = obj.terms.frame()
    assert len(rows) == 1 and rows["epoch"].tolist() == [1]
    # ||x - x_hat||^2 / (2 * 0.5) = 1 and 2: mean 1.5; KL of N(0, 1) = 0
    assert rows["loss_recon"].item() == pytest.approx(1.5)
    assert rows["loss_kl"].item() == 0.0 and rows["loss_perceptual"].item() == 0.0


def test_paper_profile_likelihood_last_epoch_and_pre_relu(tmp_path):
    weights = tmp_path / "vgg19.pth"
    weights.write_bytes(b"")
    study = study_from_spec({"profile": "paper", "vae": {"perceptual_weights": str(weights)}})
    assert study.vae.obs_var == 1.0 and study.select == "last" and study.epochs == 15
    assert study.vae.perceptual_tap == "pre_relu" and study.vae.perceptual_layers == 16
    assert VAEStudy.profile("cpu").vae.obs_var == 0.01 and VAEStudy.profile("cpu").select == "loss"


def test_train_vae_keeps_the_last_epoch_logs_terms_and_warns_on_an_inert_perceptual_term(caplog):
    from torch import nn

    from fairmed.models.perceptual import FeatureNet

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 16, 16, 3)).astype(np.uint8)
    study = VAEStudy.profile("smoke", num_threads=1, select="last", epochs=2)
    study = study.model_copy(update={"vae": study.vae.model_copy(update={"perceptual_weight": 1e-9})})
    torch.manual_seed(0)
    phi = FeatureNet(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)), [0, 2]
    )
    with caplog.at_level(logging.WARNING, logger="fairmed.studies.vae"):
        trained = train_vae(images[:32], images[32:], study, phi, seed=0)
    assert trained.best_epoch == 2
    assert trained.terms["epoch"].tolist() == [1, 2]
    assert (trained.terms["loss_recon"] > 0).all() and (trained.terms["loss_perceptual"] > 0).all()
    assert "does next to nothing" in caplog.text
    final = trained.final_terms()
    assert final["loss_recon"] == pytest.approx(float(trained.terms["loss_recon"].iloc[-1]))
