"""Frozen-backbone features, computed once per (backbone, weights, cohort, image size) and cached.

A study with many runs (strategies x seeds x compositions) on a frozen backbone would run the
same forward passes again and again; here each cohort's features are computed once and stored
as ``<cache>/features/<key>.npy``. The key hashes the architecture (and small-CNN widths), the
SHA-256 of the weights file (or "random init, seed 0" without weights), the image size, the
cohort's ids and its pixels (the image cache's key for file cohorts, a BLAKE2 hash of the
in-memory array otherwise). Change any of them and new features are computed; otherwise the
second call reads the file. Writes are atomic.

For studies whose splits change with the seed, :func:`embed_cohort` runs the backbone once over
the whole cohort and returns it with ``embeddings``, on which the :func:`head_spec` model (``arch:
mlp``, the frozen spec's head) trains with no images; the classification study kind does this.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fairmed.data.cohort import Cohort
from fairmed.data.images import load_images
from fairmed.io import atomic_write
from fairmed.models.backbones import build_backbone, image_batch
from fairmed.models.spec import ModelSpec

CACHE_VERSION = "1"
_HASH_CHUNK = 1 << 24  # bytes hashed at a time (memory-mapped arrays stay on disk)


def default_cache_dir() -> Path:
    """``$FAIRMED_CACHE`` when set, else ``~/.cache/fairmed``."""
    root = os.environ.get("FAIRMED_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "fairmed"


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def array_hash(array: np.ndarray) -> str:
    """BLAKE2 of an array's shape, dtype and bytes, read in chunks of rows."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{array.shape}{array.dtype}".encode())
    rows = max(1, _HASH_CHUNK // max(1, array[0].nbytes if len(array) else 1))
    for start in range(0, len(array), rows):
        digest.update(np.ascontiguousarray(array[start : start + rows]).tobytes())
    return digest.hexdigest()


def feature_key(spec: ModelSpec, cohort: Cohort, pixels_key: str) -> str:
    """Cache key of ``spec``'s backbone features of ``cohort`` (see the module docstring)."""
    ids = hashlib.blake2b("\x1f".join(map(str, cohort.ids)).encode(), digest_size=16).hexdigest()
    parts = {
        "version": CACHE_VERSION,
        "arch": spec.arch,
        "channels": spec.channels if spec.arch == "small_cnn" else None,
        "weights": file_hash(spec.weights) if spec.weights is not None else "random-init-seed-0",
        "image_size": spec.image_size,
        "ids": ids,
        "pixels": pixels_key,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def frozen_backbone(spec: ModelSpec) -> nn.Module:
    """The backbone in eval mode; without weights it is initialised from seed 0 (same for every run)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net, _ = build_backbone(spec)
    return net.eval()


@torch.no_grad()
def extract_features(
    backbone: nn.Module, pixels: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 256
) -> np.ndarray:
    """Features (n, d) float32 of uint8 NHWC ``pixels``, normalised like training batches."""
    device = torch.device(device)
    backbone = backbone.to(device).eval()
    out = []
    for start in range(0, len(pixels), batch_size):
        # a writable copy: torch warns on the read-only memory-mapped cache
        block = torch.from_numpy(np.array(pixels[start : start + batch_size])).to(device)
        out.append(backbone(image_batch(block)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def cached_features(
    cohort: Cohort,
    spec: ModelSpec,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """``spec``'s frozen backbone features of every cohort row, from the cache or computed once."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    images = load_images(cohort, spec.image_size, cache_dir=root / "images")
    pixels_key = images.cache_file.stem if images.cache_file is not None else array_hash(images.pixels)
    target = root / "features" / f"{feature_key(spec, cohort, pixels_key)}.npy"
    if target.exists():
        return np.load(target)
    features = extract_features(frozen_backbone(spec), images.pixels, device, batch_size)
    atomic_write(target, lambda p: _save(p, features))
    return features


def embed_cohort(
    cohort: Cohort,
    spec: ModelSpec,
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> Cohort:
    """``cohort`` with ``embeddings`` = the frozen backbone's features (images dropped)."""
    features = cached_features(cohort, spec, cache_dir, device, batch_size)
    meta = {**cohort.meta, "embedded_by": spec.model_dump(mode="json")}
    return replace(cohort, images=None, embeddings=features, meta=meta)


def head_spec(spec: ModelSpec) -> ModelSpec:
    """The trainable part of a frozen ``spec`` as a model on embeddings: the same MLP head
    (:func:`~fairmed.models.backbones.build_head_model` builds the identical network)."""
    return ModelSpec(arch="mlp", hidden=spec.hidden, dropout=spec.dropout)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)
