"""Image cache: decode + resize speed of load_images (cold, threads) and reopening the cache (warm),
side by side with a naive baseline (sequential PIL open, full decode, resize).

Run: .venv/bin/python benchmarks/image_cache_speed.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from fairmed import Cohort
from fairmed.data.images import load_images, resize_array
from fairmed.data.synth import SynthConfig, generate


def write_jpegs(root: Path, n: int, size: int = 256) -> Cohort:
    """Generated lesions upscaled to ``size`` px and saved as JPEG (like a small dermoscopy set)."""
    gen = generate(SynthConfig(n=n, size=64), seed=0)
    big = resize_array(gen.images, size)
    for i, image_id in enumerate(gen.table["id"]):
        Image.fromarray(big[i]).save(root / f"{image_id}.jpg", quality=90)
    table = pd.DataFrame({"id": gen.table["id"], "path": gen.table["id"] + ".jpg", "y": gen.y()})
    return Cohort(table, labels=["y"], attributes=[], image_root=root, name="bench")


def naive(cohort: Cohort, size: int) -> np.ndarray:
    out = np.empty((len(cohort), size, size, 3), dtype=np.uint8)
    for i, rel in enumerate(cohort.table["path"]):
        with Image.open(cohort.image_root / rel) as im:
            out[i] = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        cohort = write_jpegs(root, n)
        start = time.perf_counter()
        naive(cohort, 64)
        base = n / (time.perf_counter() - start)
        print(f"{'what':52s} {'images/s':>10s} {'vs naive':>9s}")
        print(f"{'naive: sequential PIL decode + resize (256 -> 64)':52s} {base:10.0f} {1.0:8.2f}x")
        for workers in (1, 2):
            cache = Path(tmp) / f"cache{workers}"
            start = time.perf_counter()
            load_images(cohort, size=64, cache_dir=cache, workers=workers)
            cold = n / (time.perf_counter() - start)
            print(
                f"{f'load_images cold, {workers} thread(s) (draft decode + cache)':52s} {cold:10.0f} {cold / base:8.2f}x"
            )
        start = time.perf_counter()
        arr = load_images(cohort, size=64, cache_dir=Path(tmp) / "cache2")
        float(np.asarray(arr.pixels).mean())  # touch every pixel
        warm = n / (time.perf_counter() - start)
        print(
            f"{'load_images warm (memory-mapped cache, all pixels read)':52s} {warm:10.0f} {warm / base:8.2f}x"
        )
    print(f"n = {n} JPEG files of 256x256")


if __name__ == "__main__":
    main()
