"""Wall time of one study on frozen embeddings with each executor, side by side.

A strategies x seeds study (MLP head on generated embeddings) run in this process (``--jobs 1``,
the baseline), in ``--jobs`` worker processes, and on a local Ray instance; prints seconds, the
speed-up over the baseline, and checks that the three give identical Predictions.

    .venv/bin/python benchmarks/study_executors.py --n 10000 --seeds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fairmed.studies.runner import run_study
from fairmed.studies.spec import resolve_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    spec = resolve_spec(
        {
            "name": "bench_executors",
            "source": {"kind": "synth_embeddings", "config": {"preset": "cxr", "n": args.n, "dim": args.dim}},
            "groups": ["race", "sex"],
            "design": {"repeats": args.seeds},
            "model": {"arch": "mlp"},
            "strategies": ["erm", "reweight", "resample", "adversarial", "groupdro"],
            "train": {"epochs": args.epochs, "batch_size": 256},
            "audit": {"bootstrap": 200},
        }
    )
    setups = [("in-process (jobs=1)", "local", 1), (f"processes (jobs={args.jobs})", "local", args.jobs)]
    if not args.no_ray:
        setups.append((f"ray local (num_cpus={args.jobs})", "ray", args.jobs))
    rows, frames = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, executor, jobs in setups:
            start = time.perf_counter()
            outcome = run_study(
                spec, Path(tmp) / executor / str(jobs), executor=executor, jobs=jobs, report=False
            )
            rows.append((name, time.perf_counter() - start, len(outcome.runs)))
            frames.append(
                outcome.predictions.sort_values(["method", "seed", "split", "id"]).reset_index(drop=True)
            )
    base = rows[0][1]
    print(
        f"study: 5 strategies x {args.seeds} seeds on {args.n} embeddings (dim {args.dim}), {args.epochs} epochs"
    )
    for name, seconds, n_runs in rows:
        print(f"{name:<28} {seconds:8.1f} s  {n_runs} runs  speed-up x{base / seconds:.2f}")
    same = all(f.equals(frames[0]) for f in frames[1:])
    print(f"identical Predictions across executors: {same}")


if __name__ == "__main__":
    main()
