"""Generator speed: images/s at 64x64 on one core, against the 2,000 images/s target.

Run: .venv/bin/python benchmarks/synth_speed.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: BLAS (the noise upsampling) single-threaded
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

from fairmed.data.synth import SynthConfig, generate  # noqa: E402
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings  # noqa: E402

TARGET = 2000.0  # images/s at 64x64 on one core (issue 2)


def best_rate(fn, n: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    print(f"{'what':44s} {'items/s':>10s} {'vs target':>10s}")
    for size, artifact in ((64, "ruler"), (64, "ink"), (64, "none"), (32, "ruler"), (128, "ruler")):
        n = 4000 if size <= 64 else 1000
        rate = best_rate(lambda n=n, s=size, a=artifact: generate(SynthConfig(n=n, size=s, artifact=a)), n)
        ratio = f"{rate / TARGET:9.2f}x" if size == 64 else "         -"
        print(f"{f'images {size}x{size}, artifact={artifact}, n={n}':44s} {rate:10.0f} {ratio}")
    for dim in (64, 1376):
        n = 20000
        rate = best_rate(lambda d=dim, n=n: generate_embeddings(EmbeddingSynthConfig(n=n, dim=d)), n)
        print(f"{f'embeddings dim={dim}, n={n}':44s} {rate:10.0f} {'-':>10s}")
    print(f"target: {TARGET:.0f} images/s at 64x64 on one core")


if __name__ == "__main__":
    main()
