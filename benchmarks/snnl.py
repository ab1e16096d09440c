"""SNNL-Fair scoring speed: all channels at once vs a per-channel loop of the same formula.

512 channels, 2,048 samples of 8x8 maps, batches of 128 (the scores of a VGG-11 last conv layer
over a small training set). The loop baseline computes, channel by channel, the same squared
distances (torch.cdist) and log-sum-exp ratios; the two results are checked equal. Target: >= 10x.

Run: .venv/bin/python benchmarks/snnl.py [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from fairmed.mitigate.snnl import snnl_batch

TARGET = 10.0


def loop_scores(features: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """The baseline: one channel at a time (vectorized over samples within the channel)."""
    b, k = features.shape[:2]
    same = groups[:, None] == groups[None, :]
    others = ~torch.eye(b, dtype=torch.bool, device=features.device)
    valid = (same & others).any(1)
    out = torch.empty(k, device=features.device)
    for ch in range(k):
        m = features[:, ch].reshape(b, -1)
        logits = -(torch.cdist(m, m) ** 2) / temperature
        den = torch.logsumexp(logits.masked_fill(~others, float("-inf")), dim=1)
        num = torch.logsumexp(logits.masked_fill(~(same & others), float("-inf")), dim=1)
        out[ch] = (den - num)[valid].mean()
    return out


def run(fn, batches, device) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    total = sum(fn(f, g) for f, g in batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, total / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    feats = torch.relu(torch.randn(args.samples, args.channels, args.size, args.size, generator=gen))
    groups = torch.randint(0, 2, (args.samples,), generator=gen)
    feats[groups == 1, : args.channels // 8] += 0.5  # some channels carry the group
    batches = [
        (feats[i : i + args.batch].to(device), groups[i : i + args.batch].to(device))
        for i in range(0, args.samples, args.batch)
    ]
    vec = lambda f, g: snnl_batch(f, g, args.temperature)  # noqa: E731
    loop = lambda f, g: loop_scores(f, g, args.temperature)  # noqa: E731
    run(vec, batches[:1], device)  # warm-up (CUDA context, allocator)
    run(loop, batches[:1], device)
    t_vec = min(run(vec, batches, device)[0] for _ in range(args.repeats))
    t_loop = min(run(loop, batches, device)[0] for _ in range(args.repeats))
    s_vec, s_loop = run(vec, batches, device)[1], run(loop, batches, device)[1]
    err = (s_vec - s_loop).abs().max().item()
    print(
        f"SNNL-Fair scores: {args.channels} channels x {args.samples} samples ({args.size}x{args.size} maps, "
        f"batch {args.batch}), device {device}, threads {torch.get_num_threads()}"
    )
    print(f"{'method':34s} {'seconds':>9s} {'channels/s':>11s}")
    print(f"{'per-channel loop (torch.cdist)':34s} {t_loop:9.3f} {args.channels / t_loop:11.0f}")
    print(f"{'fairmed vectorized (all channels)':34s} {t_vec:9.3f} {args.channels / t_vec:11.0f}")
    ratio = t_loop / t_vec
    print(f"speed-up {ratio:.1f}x (target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'})")
    print(f"max |score difference| {err:.2e}")


if __name__ == "__main__":
    main()
