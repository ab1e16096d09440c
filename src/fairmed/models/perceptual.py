"""The frozen feature network Phi and the feature perceptual loss of a VAE.

The perceptual loss (Hou et al. 2017, as used by López-Pérez et al. 2025) compares feature maps
of a frozen network between an image x and its reconstruction x_hat, per sample:

    L_p(x, x_hat) = sum_l 1 / (2 C_l H_l W_l) * || Phi_l(x) - Phi_l(x_hat) ||^2

The paper's Phi is ImageNet VGG-19 with l over the outputs of all 16 convolutional layers, before
their ReLU (``tap="pre_relu"``, the default, as the paper writes it); ``tap="post_relu"`` takes the
feature maps after each conv layer's ReLU (what fairmed did before, and what many DFC-VAE codes do).
Each term is divided by 2 C_l H_l W_l, the layer's size, as in the paper.

Weights come from a local torchvision ``vgg19`` ``state_dict`` (nothing is downloaded). Without one,
fairmed logs a warning and uses the documented fallback: the same VGG-19 architecture with fixed
random weights (torchvision's initialisation drawn from ``seed``), optionally truncated to its first
``n_layers`` conv layers for CPU speed. Random conv features still penalise differences in local
structure (edges, texture statistics), but they are not ImageNet features: results with the fallback
are not the paper's perceptual loss, and every run records which Phi it used (``PhiInfo``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fairmed.errors import SpecError

log = logging.getLogger(__name__)

VGG19_CONV_LAYERS = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 state_dict file name
Tap = Literal["pre_relu", "post_relu"]


@dataclass(frozen=True)
class PhiInfo:
    """Which feature network a run used (recorded in run metadata and results)."""

    source: str  # "imagenet_file" or "random_fallback"
    weights: str | None
    n_layers: int
    seed: int | None
    tap: str = "pre_relu"

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureNet(nn.Module):
    """A frozen sequential network returning the outputs of chosen layers (Phi_l for l in ``taps``).

    ``body`` is run up to the last tap only. Inputs are images in [0, 1] (N, 3, H, W); they are
    normalised with ``mean``/``std`` (ImageNet statistics for VGG) before the first layer.
    """

    def __init__(self, body: nn.Sequential, taps: list[int], mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        if not taps:
            raise SpecError("perceptual loss: at least one feature layer is needed")
        self.taps = sorted(set(int(t) for t in taps))
        self.body = body[: self.taps[-1] + 1]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNet:  # Phi stays frozen (no BN/dropout updates)
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        out = []
        taps = set(self.taps)
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i in taps:
                out.append(h)
        return out


def perceptual_loss(phi: FeatureNet, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-sample feature perceptual loss, shape (N,): sum over taps of ||Phi_l(x)-Phi_l(x_hat)||^2 / (2CHW).

    Gradients flow into ``x_hat`` only; the targets' features are computed without a graph.
    """
    with torch.no_grad():
        target = phi(x)
    recon = phi(x_hat)
    total = x.new_zeros(x.shape[0])
    for a, b in zip(target, recon, strict=True):
        chw = a[0].numel()
        total = total + (b - a).pow(2).flatten(1).sum(1) / (2.0 * chw)
    return total


def _vgg19_conv_taps(features: nn.Sequential, tap: Tap = "pre_relu") -> list[int]:
    """Indices of each conv layer of a VGG ``features`` block (``pre_relu``) or of the ReLU right after it."""
    if tap not in ("pre_relu", "post_relu"):
        raise SpecError(f"perceptual tap must be 'pre_relu' or 'post_relu', got {tap!r}")
    taps = []
    for i, layer in enumerate(features):
        if isinstance(layer, nn.Conv2d):
            after = i + 1 < len(features) and isinstance(features[i + 1], nn.ReLU)
            taps.append(i + 1 if tap == "post_relu" and after else i)
    return taps


def load_phi(
    weights: str | Path | None = None, n_layers: int = VGG19_CONV_LAYERS, seed: int = 0, tap: Tap = "pre_relu"
):
    """Build VGG-19 Phi: ImageNet weights from a local state_dict, else the seeded random fallback.

    Returns ``(FeatureNet, PhiInfo)``. ``n_layers`` (1-16) keeps the first conv layers only (the
    paper uses all 16; fewer is much faster on a CPU at small image sizes); ``tap`` picks the conv
    outputs (``pre_relu``, the paper) or the ReLU outputs.
    """
    from torchvision.models import vgg19

    if not 1 <= n_layers <= VGG19_CONV_LAYERS:
        raise SpecError(f"perceptual n_layers must be 1..{VGG19_CONV_LAYERS}, got {n_layers}")
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise SpecError(
                f"perceptual weights: {path} is not a file (expected a torchvision vgg19 state_dict)"
            )
        net = vgg19(weights=None)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SpecError(
                f"perceptual weights: {path} is not a torchvision vgg19 state_dict ({first})"
            ) from None
        info = PhiInfo("imagenet_file", str(path), n_layers, None, tap)
    else:
        log.warning(
            "perceptual loss: no VGG-19 weights given (expected a local %s); using the fallback VGG-19 with"
            " fixed RANDOM weights (seed %d, first %d conv layers) - not ImageNet features, not the paper's"
            " perceptual loss; recorded as phi=random_fallback in every result row",
            VGG19_FILE,
            seed,
            n_layers,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = vgg19(weights=None)
        info = PhiInfo("random_fallback", None, n_layers, seed, tap)
    features = net.features
    taps = _vgg19_conv_taps(features, tap)[:n_layers]
    return FeatureNet(features, taps), info
