"""What each training strategy costs: seconds per training epoch against ERM on the same data.

Every strategy (the MEDFAIR methods included) trains the same model on the same rows through the
one loop's :class:`~fairmed.train.loop.Stepper` (its ``train_step`` and ``end_epoch``: SAM's second
pass, LAFTR's adversary, SWA/SWAD's averaging all count; validation, common to all, does not).
Repeats are interleaved across methods (the machine is shared) after one warm-up epoch each; the
best epoch time is reported, with its ratio to ERM's.

1. embeddings: an MLP head (``hidden`` units) on synthetic embeddings (``--n`` rows, ``--dim``);
2. images: the small CNN on synthetic images (``--n-images`` rows, ``--size`` pixels).

Groups: ``sex`` (two groups: LAFTR's audit is binary) for embeddings, FST 1-3 / 4-6 for images.

Run: PYTHONPATH=src python benchmarks/method_cost.py [--repeats 3] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fairmed.data.groups import GroupSpec
from fairmed.data.images import load_images
from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.models import ModelSpec, build_model
from fairmed.train import STRATEGIES, StrategySpec, TrainConfig, group_codes, tensor_data
from fairmed.train.loop import Stepper
from fairmed.train.strategies import Task, make_strategy

SCORES = {"val_loss": 0.5, "val_auc": 0.7, "val_worst_group_auc": 0.6}  # what end_epoch sees


def _stepper(name: str, x: np.ndarray, cohort, groups: str, spec: ModelSpec, config: TrainConfig) -> Stepper:
    codes, names = group_codes([cohort], GroupSpec.parse(groups))
    data = tensor_data(x, cohort, cohort.label, codes[0], names)
    sspec = StrategySpec(name=name)
    task = Task.resolve(2, sspec)
    torch.manual_seed(0)
    model = build_model(spec, task.n_out, in_dim=x.shape[1] if x.ndim == 2 else None)
    strategy = make_strategy(sspec, task, model.feature_dim, data)
    strategy.attach(model)
    return Stepper.build(model, strategy, data, config)


def _epoch(stepper: Stepper, epoch: int) -> float:
    if stepper.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stepper.epoch()
    stepper.strategy.end_epoch(epoch, stepper, SCORES)
    if stepper.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def cost(
    title: str, x: np.ndarray, cohort, groups: str, spec: ModelSpec, config: TrainConfig, repeats: int
) -> None:
    steppers = {name: _stepper(name, x, cohort, groups, spec, config) for name in STRATEGIES}
    times: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    for st in steppers.values():
        _epoch(st, 1)  # warm-up
    for r in range(repeats):
        for name, st in steppers.items():
            times[name].append(_epoch(st, r + 2))
    erm = min(times["erm"])
    print(f"\n{title}")
    print(f"| method | s / epoch (best of {repeats}) | x ERM |")
    print("|---|---:|---:|")
    for name in STRATEGIES:
        best = min(times[name])
        print(f"| {name} | {best:.3f} | {best / erm:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=196)
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a check that it runs)")
    ap.add_argument("--only", choices=["embeddings", "images"], default=None)
    args = ap.parse_args()
    if args.quick:
        args.n, args.dim, args.n_images, args.size, args.repeats = 400, 32, 96, 16, 1
    default_threads = args.threads or torch.get_num_threads()
    config = TrainConfig(batch_size=args.batch, device=args.device, seed=0, amp="auto")

    if args.only != "images":
        embeddings(args, config, default_threads)
    if args.only != "embeddings":
        images(args, config, default_threads)


def embeddings(args, config: TrainConfig, default_threads: int) -> None:
    emb = generate_embeddings(EmbeddingSynthConfig(n=args.n, dim=args.dim), seed=0)
    x = np.asarray(emb.embeddings, dtype=np.float32)
    # as fit() does: one thread for MLP heads on the CPU unless --threads
    torch.set_num_threads(args.threads or (1 if args.device == "cpu" else default_threads))
    cost(
        f"embeddings: MLP ({args.hidden} hidden) on {args.n} x {args.dim}, batch {args.batch}, {args.device},"
        f" {torch.get_num_threads()} thread(s)",
        x, emb, "sex", ModelSpec(arch="mlp", hidden=args.hidden), config, args.repeats,
    )  # fmt: skip


def images(args, config: TrainConfig, default_threads: int) -> None:
    torch.set_num_threads(default_threads)
    img = generate(SynthConfig(n=args.n_images, size=args.size), seed=0)
    pixels = np.asarray(load_images(img, args.size).pixels)
    cost(
        f"images: small_cnn on {args.n_images} images of {args.size} px, batch {args.batch}, {args.device},"
        f" {torch.get_num_threads()} thread(s)",
        pixels, img, "fst:123-456", ModelSpec(arch="small_cnn", image_size=args.size), config, args.repeats,
    )  # fmt: skip


if __name__ == "__main__":
    main()
