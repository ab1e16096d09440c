"""Time of the GCE study's method grid: 8 methods x 2 detector losses x seeds on chest X-ray embeddings.

The grid of issue 7: Before, DS, US20, US25, US50, D&U20, D&U25, D&U50 for a GCE and a BCE detector
over 5 seeds, on 100,000 embeddings of dimension 1,376 (MLP, one hidden layer of 196, batch 32,
50 epochs in the paper), every model trained with fairmed's one loop through
:func:`fairmed.mitigate.gce.resample_and_fit`.

Two ways to run the grid, timed side by side on the same data and splits:

- ``shared`` (what the ``gce_resampling`` study does): one detector per (seed, loss) reused by the
  7 resampling methods, one ``Before`` model per seed shared by both losses:
  ``losses x seeds`` detectors + ``(7 x losses + 1) x seeds`` classifiers;
- ``separate`` (the baseline): every method trains its own detector and every (loss, seed) its own
  Before: ``7 x losses x seeds`` detectors + ``8 x losses x seeds`` classifiers.

It also prints the grid's cost in plain ERM runs (one ``Before`` fit). Timings are wall time in
this process with ``--threads`` torch threads (1 = what the study's runs use); the extrapolation to
the full size assumes time linear in rows x epochs (the loop is per mini-batch; an MLP step at
batch 32 costs the same whatever n) and, for 2 cores, two runs side by side (the study's default
``--jobs 2``: independent runs, no shared state).

Run (a few minutes on the shared 2-core machine):
  .venv/bin/python benchmarks/gce_grid.py --n 4000 --dim 1376 --epochs 1 --seeds 2
Full size (hours on 2 cores; see docs/gce.md for the measured extrapolation):
  .venv/bin/python benchmarks/gce_grid.py --n 100000 --dim 1376 --epochs 50 --seeds 5 --baseline derive
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import torch

from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.design.splits import split_cohort
from fairmed.mitigate.gce import detect_bias, resample_and_fit

ATTRIBUTES = ["race", "sex", "age:20,40,60,80", "insurance"]
METHODS = {
    "DS": {"mode": "down"},
    "US20": {"mode": "up", "up_fraction": 0.2},
    "US25": {"mode": "up", "up_fraction": 0.25},
    "US50": {"mode": "up", "up_fraction": 0.5},
    "D&U20": {"mode": "down_up", "up_fraction": 0.2},
    "D&U25": {"mode": "down_up", "up_fraction": 0.25},
    "D&U50": {"mode": "down_up", "up_fraction": 0.5},
}
PAPER = {"n": 100_000, "epochs": 50, "seeds": 5, "losses": 2}


def cohort_parts(n: int, dim: int, seeds: int):
    cfg = EmbeddingSynthConfig(
        preset="cxr",
        n=n,
        dim=dim,
        separation=1.0,
        label_noise_by={"insurance": {"Medicaid": 0.4}, "race": {"Black": 0.2}},
        label_noise_mode="to_1",
    )
    cohort = generate_embeddings(cfg, seed=2026)  # not a split seed (see docs/gce.md)
    out = {}
    for seed in range(seeds):
        pos = split_cohort(cohort, {"train": 0.6, "val": 0.2, "test": 0.2}, seed, None, ["no_finding"])
        out[seed] = {k: cohort.subset(v) for k, v in pos.items()}
    return out


class Clock:
    """Wall and CPU seconds of this process per component (detector, Before, each method's classifier).

    CPU time is what the work costs on an idle core; on a shared machine wall time is larger.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)

    def time(self, name: str, fn, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        value = fn(*args, **kwargs)
        self.seconds[name].append(time.perf_counter() - start)
        self.cpu[name].append(time.process_time() - cpu)
        return value

    def total(self, cpu: bool = False) -> float:
        return sum(sum(v) for v in (self.cpu if cpu else self.seconds).values())


def run_grid(parts, losses, kw, shared: bool) -> Clock:
    """The grid, one model after the other; ``shared``: one detector per (seed, loss), one Before per seed."""
    clock = Clock()
    for seed, p in parts.items():
        data = (p["train"], p["val"], p["test"])
        common = {**kw, "seed": seed, "attributes": ATTRIBUTES}
        before = {**common, "resampling": {"mode": "none"}}
        if shared:
            clock.time("Before", resample_and_fit, *data, **before)
        for loss in losses:
            if not shared:
                clock.time("Before", resample_and_fit, *data, **before)
            det = None
            for name, res in METHODS.items():
                if det is None or not shared:  # the baseline trains a detector for every method
                    det = clock.time("detector", detect_bias, *data[:2], detector_loss=loss, **kw, seed=seed)
                clock.time(name, resample_and_fit, *data, resampling=res, detector=det, **common)
    return clock


def derived_separate(shared: Clock, losses: int, seeds: int) -> float:
    """The baseline from the shared run's measurements: 6 more detectors per (loss, seed), Before x losses."""
    det = np.mean(shared.seconds["detector"])
    before = np.mean(shared.seconds["Before"])
    return shared.total() + (len(METHODS) - 1) * det * losses * seeds + before * (losses - 1) * seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="embeddings (paper: 100000)")
    ap.add_argument("--dim", type=int, default=1376)
    ap.add_argument("--epochs", type=int, default=1, help="paper: 50")
    ap.add_argument("--seeds", type=int, default=2, help="paper: 5")
    ap.add_argument("--hidden", type=int, default=196)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (the study uses 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--baseline", choices=["run", "derive"], default="run",
                    help="run the separate-detector grid too, or derive it from the shared run's timings")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    losses = ["gce", "bce"]
    kw = {
        "model": {"arch": "mlp", "hidden": args.hidden},
        "config": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "num_threads": args.threads,
            "device": args.device,
            "eval_batch_size": 4096,
        },  # fmt: skip
    }
    start = time.perf_counter()
    parts = cohort_parts(args.n, args.dim, args.seeds)
    n_train = len(parts[0]["train"])
    print(f"data: n={args.n} dim={args.dim} (train {n_train}) in {time.perf_counter() - start:.1f} s; "
          f"epochs={args.epochs} batch={args.batch_size} hidden={args.hidden} seeds={args.seeds} "
          f"threads={args.threads} device={args.device}")  # fmt: skip

    warm = parts[0]
    resample_and_fit(
        warm["train"].subset(np.arange(256)),
        warm["val"],
        warm["test"],
        resampling={"mode": "none"},
        attributes=ATTRIBUTES,
        **kw,
        seed=0,
    )  # fmt: skip  (warm-up: torch init, first allocations)
    shared = run_grid(parts, losses, kw, shared=True)
    print("\nshared grid (the study): seconds per component")
    print(f"{'component':<10} {'count':>5} {'mean s':>8} {'total s':>8} {'cpu s':>8}")
    for name, secs in shared.seconds.items():
        print(
            f"{name:<10} {len(secs):>5} {np.mean(secs):>8.2f} {sum(secs):>8.1f} {sum(shared.cpu[name]):>8.1f}"
        )
    t_shared = shared.total()
    derived = derived_separate(shared, len(losses), args.seeds)
    if args.baseline == "run":
        separate = run_grid(parts, losses, kw, shared=False)
        t_sep, how = separate.total(), "measured"
        print(f"cpu seconds: shared {shared.total(cpu=True):.1f}, separate {separate.total(cpu=True):.1f} "
              f"(ratio {separate.total(cpu=True) / shared.total(cpu=True):.2f}x)")  # fmt: skip
    else:
        t_sep, how = derived, "derived from the shared run"
    erm = float(np.mean(shared.seconds["Before"]))
    print(f"\ngrid of {len(METHODS) + 1} methods x {len(losses)} losses x {args.seeds} seeds:")
    print(f"  shared detector (study)    {t_shared:8.1f} s")
    print(f"  separate detectors ({how}) {t_sep:8.1f} s   (derived: {derived:.1f} s)")
    print(f"  ratio separate / shared    {t_sep / t_shared:8.2f}x")
    t_det = sum(shared.seconds["detector"])
    print(f"  study with --jobs 2, worst case (each worker trains every detector once more): "
          f"{t_shared + t_det:.1f} s")  # fmt: skip
    print(f"  one plain ERM run (Before) {erm:8.2f} s -> the shared grid costs {t_shared / erm:.1f} ERM runs")
    scale = (PAPER["n"] / args.n) * (PAPER["epochs"] / args.epochs) * (PAPER["seeds"] / args.seeds)
    full = t_shared * scale
    full_cpu = shared.total(cpu=True) * scale
    print(f"\nextrapolated to n={PAPER['n']:,}, {PAPER['epochs']} epochs, {PAPER['seeds']} seeds "
          f"(x{scale:.0f}, linear in rows x epochs x seeds):")  # fmt: skip
    print(f"  shared: {full / 3600:.1f} h on 1 core, {full / 7200:.1f} h on 2 cores (2 runs side by side); "
          f"separate: {t_sep * scale / 7200:.1f} h on 2 cores")  # fmt: skip
    print(
        f"  shared from cpu time (idle cores): {full_cpu / 3600:.1f} h on 1 core, {full_cpu / 7200:.1f} h on 2 cores"
    )


if __name__ == "__main__":
    main()
