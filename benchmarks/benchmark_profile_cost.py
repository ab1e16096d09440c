"""Estimate the wall time of `fairmed run benchmark --profile cpu` on 2 cores from the cost of its runs.

On a shared machine a full run's wall time says more about the neighbours than about fairmed, so
this script times one seed of every method of every *kind* of configuration (the embedding
mechanisms share one data size and model: one of them stands for all; the image configuration is
timed on its own), in this process with one torch thread as the runner's workers use, and records
both wall and CPU seconds. It then prices the whole grid:

    runs  = configurations x methods x seeds (the ERM family -- erm, post-processing, pruning -- is
            trained once per configuration and seed, as the runner's cache does)
    audit = the audit's seconds per run (the spec's bootstrap) x runs
    total = (sum of run seconds + audit) / jobs      (the local executor's processes: 2)

and prints the estimate from CPU seconds (what 2 idle cores would take) and from wall seconds
(what this machine took, contention included), the largest number of seeds that stays within the
budget, and the same with ``--extra NAME=FACTOR`` methods not in this build (each costs FACTOR x
ERM's training, e.g. ``--extra sam=2 --extra gsam=2 --extra swad=1.1``).

    .venv/bin/python benchmarks/benchmark_profile_cost.py [--profile cpu] [--budget 1200] [--extra ...]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import pandas as pd

from fairmed.studies.benchmark import expand
from fairmed.studies.benchmark.run import execute, mechanism_spec
from fairmed.studies.spec import load_spec


def timed(fn):
    """(result, wall seconds, CPU seconds of this process) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def kind_of(params: dict) -> str:
    """The cost class of a configuration: its own source/model (replace_source) or the study's."""
    return (
        "own:" + str(sorted((params.get("model") or {}).items())) if params.get("replace_source") else "study"
    )


def audit_seconds(spec, predictions: pd.DataFrame) -> tuple[float, float]:
    """Wall and CPU seconds of the runner's audit of one run's Predictions (the spec's settings)."""
    from fairmed.metrics.audit import audit

    frame = predictions[predictions["split"].isin(spec.audit.splits)]
    a = spec.audit

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audit(frame, spec.group_specs(), threshold=a.threshold, bootstrap=a.bootstrap, ci=a.ci)

    _, wall, cpu = timed(run)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds (20 minutes)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--extra", action="append", default=[], help="NAME=FACTOR: a method not in this build"
    )
    args = parser.parse_args()
    os.environ.setdefault("FAIRMED_CACHE", tempfile.mkdtemp(prefix="bm_cost_"))
    spec = load_spec("benchmark", profile=args.profile)
    runs = expand(spec)
    seeds = sorted({r.seed for r in runs})
    configs = list(dict.fromkeys(r.config for r in runs))
    methods = list(dict.fromkeys(r.method for r in runs))
    extra = {k: float(v) for k, v in (e.split("=", 1) for e in args.extra)}
    print(
        f"benchmark --profile {args.profile}: {len(configs)} configurations x {len(methods)} methods x "
        f"{len(seeds)} seeds = {len(runs)} runs; jobs {args.jobs}; budget {args.budget:.0f} s"
    )

    # one seed of each cost class, every method (ERM family first: its first run trains it)
    timed_runs: dict[tuple[str, str], tuple[float, float]] = {}
    audit_cost: list[tuple[float, float]] = []
    by_kind: dict[str, str] = {}
    for r in runs:
        by_kind.setdefault(kind_of(r.params), r.config)
    for kind, config in by_kind.items():
        for r in (r for r in runs if r.config == config and r.seed == seeds[0]):
            preds, wall, cpu = timed(lambda r=r: execute(r))
            timed_runs[(kind, r.method)] = (wall, cpu)
            if r.method == "erm":
                audit_cost.append(
                    audit_seconds(mechanism_spec(r.study_spec(), r.params), preds.assign(**r.keys))
                )
            print(f"  {config:>16} {r.method:>18}: {wall:7.2f} s wall, {cpu:7.2f} s CPU")
    a_wall = sum(w for w, _ in audit_cost) / len(audit_cost)
    a_cpu = sum(c for _, c in audit_cost) / len(audit_cost)
    print(f"  audit of one run (bootstrap {spec.audit.bootstrap}): {a_wall:.2f} s wall, {a_cpu:.2f} s CPU")

    def per_seed(which: int, extra: dict[str, float]) -> float:
        """Seconds of one seed of every configuration and method (+ ``extra`` methods), audits included."""
        total = 0.0
        for config in configs:
            params = next(r.params for r in runs if r.config == config)
            kind = kind_of(params)
            costs = {m: timed_runs[(kind, m)][which] for m in methods}
            # ERM's training alone: the erm run also derives the whole ERM family (pruning included),
            # so a plain training run of the same model (reweight) prices one training
            erm_train = costs.get("reweight", costs["erm"])
            total += sum(costs.values()) + sum(f * erm_train for f in extra.values())
            total += (len(methods) + len(extra)) * (a_wall, a_cpu)[which]
        return total

    for which, name in ((1, "CPU seconds (2 idle cores)"), (0, "wall seconds (this machine, now)")):
        for label, more in (("this build", {}), (f"+ {len(extra)} extra methods", extra)):
            if label != "this build" and not more:
                continue
            one = per_seed(which, more) / args.jobs
            fit = int(args.budget // one) if one > 0 else len(seeds)
            print(
                f"from {name}, {label} ({len(methods) + len(more)} methods): {one:.0f} s per seed -> "
                f"{one * len(seeds) / 60:.1f} min for {len(seeds)} seeds; at most {fit} seeds within "
                f"{args.budget / 60:.0f} min"
            )


if __name__ == "__main__":
    main()
