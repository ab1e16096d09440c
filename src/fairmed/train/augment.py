"""Training augmentations of image batches beyond flips, applied to uint8 NHWC pixels before normalisation.

``skin`` is the training augmentation of the channel-pruning paper's public code (Kong et al. 2024,
``ISIC2019_Augmentations``, used for both Fitzpatrick17k and ISIC 2019): per image a random affine map
(rotation up to 180 degrees, scale 0.8-1.2, shear 10 degrees), a colour jitter (brightness 32/255,
saturation 0.5), an AutoAugment policy and one 16-pixel cutout, followed by the random horizontal
and vertical flips of :func:`fairmed.models.backbones.image_batch`. fairmed uses torchvision's
AutoAugment (ImageNet policy) where the authors ship their own copy of it, and bilinear
interpolation for the affine map where they choose among nearest, bicubic and bilinear.

Each batch draws one seed from the loop's generator, so a run is reproducible and the global
torch random state is left as it was.
"""

from __future__ import annotations

import torch

AUGMENTS = ("none", "flip", "skin")
CUTOUT = 16  # side of the square the authors' Cutout_v0 zeroes (pixels, at the model's input size)


def _skin_pipeline():
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomAffine(degrees=180, scale=(0.8, 1.2), shear=10),
            v2.ColorJitter(brightness=32 / 255, saturation=0.5),
            v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET),
        ]
    )


def _cutout(img: torch.Tensor, length: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``length`` x ``length`` square centred at a uniform pixel (clipped at the border)."""
    _, h, w = img.shape
    cy, cx = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
    img[
        :,
        max(0, cy - length // 2) : min(h, cy + length // 2),
        max(0, cx - length // 2) : min(w, cx + length // 2),
    ] = 0
    return img


def skin_augment(pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The ``skin`` augmentation (module docstring) of uint8 (N, H, W, 3) pixels; same shape and dtype."""
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    pipeline = _skin_pipeline()
    device = pixels.device
    chw = pixels.permute(0, 3, 1, 2).cpu()
    out = torch.empty_like(chw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        local = torch.Generator().manual_seed(seed)
        for i in range(len(chw)):
            out[i] = _cutout(pipeline(chw[i]).clone(), CUTOUT, local)
    return out.permute(0, 2, 3, 1).contiguous().to(device)
