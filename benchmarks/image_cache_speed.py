"""Image cache: decode + resize speed of load_images (cold, threads) and reopening the cache (warm),
side by side with a naive baseline (sequential PIL open, full decode, resize); then large images
(smartphone photographs, radiographs) decoded at reduced size (JPEG draft, reducing_gap) against a
full decode, on generated 2400x1800 files and on the real subsets in ../shared/data when present.

Run: .venv/bin/python benchmarks/image_cache_speed.py [N] [N_LARGE]
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
from fairmed.data.images import _decode, _square, load_images, resize_array, to_rgb8
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


def full_decode(path: Path, size: int) -> np.ndarray:
    """The baseline of the large-image rows: decode every pixel, then crop and resize."""
    with Image.open(path) as im:
        im.load()
        return to_rgb8(im.resize((size, size), Image.Resampling.BILINEAR, box=_square(*im.size)))


def write_large(root: Path, n: int, fmt: str) -> list[Path]:
    """Smooth 2400x1800 pictures with some texture (like a phone photograph), as JPEG or PNG."""
    y, x = np.mgrid[0:1800, 0:2400]
    paths = []
    for i in range(n):
        noise = np.random.default_rng(i).integers(0, 24, (1800, 2400, 1))
        base = np.stack([x * 200 // 2400, y * 200 // 1800, (x + y + 300 * i) % 200], axis=-1)
        path = root / f"large{i}.{fmt}"
        Image.fromarray((base + noise).astype(np.uint8)).save(
            path, **({"quality": 90} if fmt == "jpg" else {})
        )
        paths.append(path)
    return paths


def time_per_image(paths: list[Path], fn, size: int) -> float:
    start = time.perf_counter()
    for path in paths:
        fn(path, size)
    return (time.perf_counter() - start) / len(paths)


def large_images(tmp: Path, n: int) -> None:
    sets = {}
    for fmt in ("jpg", "png"):
        folder = tmp / f"large_{fmt}"
        folder.mkdir()
        sets[f"generated 2400x1800 {fmt.upper()} x {n}"] = write_large(folder, n, fmt)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    for name in ("pad-ufes-20-subset", "covid-chestxray-subset"):
        if (shared / name / "images").is_dir():
            sets[f"real: {name} ({len(list((shared / name / 'images').iterdir()))} files)"] = sorted(
                (shared / name / "images").iterdir()
            )
    print(f"\n{'large images, one thread, ms per image':52s} {'full':>7s} {'reduced':>8s} {'speed-up':>9s}")
    for size in (64, 224):
        for label, paths in sets.items():
            full = time_per_image(paths, full_decode, size)
            fast = time_per_image(paths, _decode, size)
            print(f"{f'{label} -> {size}':52s} {1e3 * full:7.1f} {1e3 * fast:8.1f} {full / fast:8.2f}x")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_large = int(sys.argv[2]) if len(sys.argv) > 2 else 12
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
        large_images(Path(tmp), n_large)


if __name__ == "__main__":
    main()
