"""The residual VAE of the generative-fairness study (López-Pérez, Hauberg & Feragen 2025) and its losses.

Encoder and decoder are stacks of residual blocks (BatchNorm, ELU, 3x3 convs) that halve / double
the resolution once per stage, so an image of ``image_size`` maps to a spatial latent of
``latent_channels x (image_size / 2^stages)^2`` (the paper: 8 x 8 x 64). q(z|x) = N(mu, diag sigma^2)
with a standard normal prior; z = mu + sigma * eps (reparameterisation).

Loss per sample (averaged over a batch for training):

    loss = -ELBO + perceptual_weight * L_p
    -ELBO = ||x - x_hat||^2 / (2 obs_var) + D/2 log(2 pi obs_var) + KL(q(z|x) || N(0, I))

with pixels in [0, 1] and D = 3 H W. The paper's likelihood is p(x|z) = N(f(z), I): ``obs_var = 1``,
which the ``paper`` profile of the study uses. ``obs_var = 0.5`` would make the reconstruction term
the summed squared error (the usual ``mse_loss(reduction="sum") + KL``); at fairmed's small sizes
that lets the KL win (latent std ~0.99: reconstructions are the mean skin colour), so the smoke and
cpu profiles keep ``obs_var = 0.01`` (sigma = 0.1, the reconstruction x100 against the KL and
perceptual terms), which encodes each image's colour and lesion. Every result row records the
``obs_var`` that ran. L_p is ``fairmed.models.perceptual``.

Per-sample outputs (``VAE.evaluate``): ``recon_mse`` = mean over pixels and channels of
(x - x_hat)^2 with x_hat the decoder mean at z = mu (deterministic), on the [0, 1] pixel scale by
default (``mse_scale=2`` reports on the [-1, 1] scale of the authors' code base, 4 times larger;
``mse_scale=255`` on the [0, 255] scale, 65,025 times larger); ``latent_std`` = the mean
of sigma over all latent units; ``elbo`` = the ELBO in nats (one z sample, seeded).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from torch.nn import functional as F

from fairmed.errors import SpecError


class VAEConfig(BaseModel):
    """Shape and objective of a residual VAE; defaults run on a 2-core CPU (32x32 images, 8x8x16 latent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(32, ge=8, le=1024, description="square input size (pixels)")
    channels: list[int] = Field([32, 64], min_length=1, description="width of each down-sampling stage")
    blocks: int = Field(1, ge=1, description="residual blocks per stage (the first one resamples)")
    latent_channels: int = Field(16, ge=1, description="channels of the spatial latent (paper: 64)")
    obs_var: float = Field(
        0.01, gt=0, description="variance of the Gaussian likelihood p(x|z), pixels in [0, 1]"
    )
    beta: float = Field(1.0, ge=0, description="weight of the KL term (1 = the ELBO)")
    perceptual_weight: float = Field(1.0, ge=0, description="weight of the perceptual loss; 0 = plain VAE")
    perceptual_layers: int = Field(16, ge=1, le=16, description="VGG-19 conv layers used by Phi (paper: 16)")
    perceptual_tap: Literal["pre_relu", "post_relu"] = Field(
        "pre_relu", description="Phi_l = each conv layer's output before its ReLU (paper) or after it"
    )
    perceptual_weights: str | None = Field(None, description="local torchvision vgg19 state_dict for Phi")
    mse_scale: float = Field(
        1.0, gt=0, description="pixel range width of recon_mse: 1 ([0,1]), 2 ([-1,1], the authors' code), 255"
    )

    @model_validator(mode="after")
    def _check(self) -> VAEConfig:
        stages = len(self.channels)
        if self.image_size % (2**stages):
            raise SpecError(
                f"vae: image_size {self.image_size} must be divisible by 2^{stages} (one per stage)"
            )
        if any(c < 1 for c in self.channels):
            raise SpecError(f"vae.channels must be positive, got {self.channels}")
        return self

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** len(self.channels)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.latent_size, self.latent_size)


class ResBlock(nn.Module):
    """Pre-activation residual block: BN-ELU-conv-BN-ELU-conv, with ``resample`` in {none, down, up}."""

    def __init__(self, c_in: int, c_out: int, resample: str = "none"):
        super().__init__()
        self.resample = resample
        stride = 2 if resample == "down" else 1
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.skip = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if (c_in != c_out or resample != "none")
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(F.elu(self.bn1(x)))
        h = self.conv2(F.elu(self.bn2(h)))
        return h + (x if self.skip is None else self.skip(x))


def _stage(c_in: int, c_out: int, blocks: int, resample: str) -> list[nn.Module]:
    return [ResBlock(c_in, c_out, resample)] + [ResBlock(c_out, c_out) for _ in range(blocks - 1)]


class VAE(nn.Module):
    """Residual convolutional VAE with a spatial Gaussian latent."""

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = cfg = config or VAEConfig()
        ch = cfg.channels
        enc: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, padding=1)]
        c = ch[0]
        for w in ch:
            enc += _stage(c, w, cfg.blocks, "down")
            c = w
        enc += [nn.BatchNorm2d(c), nn.ELU(), nn.Conv2d(c, 2 * cfg.latent_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[-1], 1)]
        c = ch[-1]
        for w in reversed(ch):
            dec += _stage(c, w, cfg.blocks, "up")
            c = w
        dec += [nn.BatchNorm2d(c), nn.ELU(), nn.Conv2d(c, 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu and log sigma^2 of q(z|x), each (N, latent_channels, s, s)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of p(x|z) in [0, 1] (sigmoid output)."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I): differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, shape (N,): 1/2 sum(mu^2 + s^2 - log s^2 - 1)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).flatten(1).sum(1)


def gaussian_nll(x: torch.Tensor, x_hat: torch.Tensor, obs_var: float) -> torch.Tensor:
    """-log N(x; x_hat, obs_var I) per sample, shape (N,), in nats."""
    d = x[0].numel()
    sse = (x - x_hat).pow(2).flatten(1).sum(1)
    return sse / (2.0 * obs_var) + 0.5 * d * math.log(2.0 * math.pi * obs_var)


def vae_loss(
    model: VAE, x: torch.Tensor, phi=None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Training objective on a batch: mean over samples of -ELBO (beta-weighted KL) + weight * perceptual.

    ``phi`` is a ``FeatureNet`` or None (plain VAE, also when ``perceptual_weight == 0``).
    Returns the scalar loss and its parts (batch means) for logging.
    """
    cfg = model.config
    x_hat, mu, logvar = model(x, generator)
    nll = gaussian_nll(x, x_hat, cfg.obs_var)
    kl = kl_divergence(mu, logvar)
    loss = nll + cfg.beta * kl
    parts = {"nll": float(nll.detach().mean()), "kl": float(kl.detach().mean())}
    if phi is not None and cfg.perceptual_weight > 0:
        from fairmed.models.perceptual import perceptual_loss

        lp = perceptual_loss(phi, x, x_hat)
        loss = loss + cfg.perceptual_weight * lp
        parts["perceptual"] = float(lp.detach().mean())
    loss = loss.mean()
    parts["loss"] = float(loss.detach())
    return loss, parts


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def evaluate(
    model: VAE,
    images: np.ndarray,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    return_recon: bool = False,
) -> dict[str, np.ndarray]:
    """Per-sample ``recon_mse``, ``latent_std``, ``elbo`` (and optionally uint8 reconstructions) of uint8 images.

    The reconstruction is the decoder mean at z = mu (no sampling noise in the MSE); the ELBO uses one
    seeded z sample. Runs in eval mode (BatchNorm running statistics).
    """
    cfg = model.config
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    mse, std, elbo, recons = [], [], [], []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size]).to(device)
        mu, logvar = model.encode(x)
        x_mean = model.decode(mu)
        x_sample = model.decode(reparameterize(mu, logvar, gen))
        mse.append((x - x_mean).pow(2).flatten(1).mean(1) * cfg.mse_scale**2)
        std.append(torch.exp(0.5 * logvar).flatten(1).mean(1))
        elbo.append(-(gaussian_nll(x, x_sample, cfg.obs_var) + kl_divergence(mu, logvar)))
        if return_recon:
            recons.append((x_mean * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    model.train(was_training)
    out = {
        "recon_mse": torch.cat(mse).cpu().numpy().astype(np.float64),
        "latent_std": torch.cat(std).cpu().numpy().astype(np.float64),
        "elbo": torch.cat(elbo).cpu().numpy().astype(np.float64),
    }
    if return_recon:
        out["recon"] = torch.cat(recons).cpu().numpy()
    return out
