"""Executors: run a study's runs in this process, in local worker processes, or on Ray.

Each executor calls ``execute(run)`` (a kind's top-level, picklable function) and yields
``(run, predictions)`` as runs finish; the runner, in the driver, writes each result to disk, so
workers need no shared file system (a Ray cluster works as is). Same runs, same seeds, same
Predictions whichever executor runs them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from fairmed.errors import FairmedError, SpecError
from fairmed.progress import StepLines, bar
from fairmed.studies.kinds import RunSpec

EXECUTORS: tuple[str, ...] = ("local", "ray")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
Execute = Callable[[RunSpec], pd.DataFrame]


def default_jobs() -> int:
    """min(2, cores): two runs side by side on a laptop without oversubscribing it."""
    return max(1, min(2, os.cpu_count() or 1))


def _init_worker(threads: int, driver: int, settings: dict[str, str]) -> None:
    """One BLAS/torch thread per worker process so that ``jobs`` workers share the cores; the
    driver's current ``FAIRMED_*`` settings (a forkserver keeps the environment of its start); the
    worker dies with the driver (a SIGKILLed ``fairmed run`` must not leave runs training)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    for var in [v for v in os.environ if v.startswith("FAIRMED_") and v not in settings]:
        del os.environ[var]
    os.environ.update(settings)
    die_with_parent()
    threading.Thread(target=_watch_driver, args=(driver, os.getppid()), daemon=True).start()


def die_with_parent() -> bool:
    """Linux: ask the kernel for SIGKILL when this process's parent dies (prctl PR_SET_PDEATHSIG).

    The parent of a pool worker is the forkserver, which exits when the driver does. Returns
    False where the call is not available (the watchdog thread then does the job alone).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return False


def _watch_driver(driver: int, parent: int, every: float = 1.0) -> None:
    """Fallback on every platform: exit once the driver is gone or this process was re-parented."""
    while True:
        time.sleep(every)
        if os.getppid() != parent or not _alive(driver):
            os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - exists, another user's
        return True
    return True


BROKEN_POOL = (
    "a worker process stopped abruptly: from a script, call run_study under "
    '`if __name__ == "__main__":` (each worker imports the script), or pass jobs=1; '
    "otherwise a worker ran out of memory"
)


def _call(execute: Execute, run: RunSpec) -> pd.DataFrame:
    return execute(run)


def run_local(
    runs: Sequence[RunSpec], execute: Execute, jobs: int | None = None
) -> Iterator[tuple[RunSpec, pd.DataFrame]]:
    """In this process (``jobs=1``) or in ``jobs`` worker processes (forkserver/spawn, never fork)."""
    jobs = default_jobs() if jobs is None else jobs
    if jobs < 1:
        raise SpecError(f"--jobs: expected at least 1, got {jobs}")
    if jobs == 1 or len(runs) <= 1:
        for run in runs:
            yield run, execute(run)
        return
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(runs)),
        mp_context=mp.get_context(method),
        initializer=_init_worker,
        initargs=(threads, os.getpid(), {k: v for k, v in os.environ.items() if k.startswith("FAIRMED_")}),
    ) as pool:
        pending = {pool.submit(_call, execute, run): run for run in runs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                try:
                    frame = future.result()
                except BrokenProcessPool:
                    raise FairmedError(BROKEN_POOL) from None
                yield run, frame


def run_ray(
    runs: Sequence[RunSpec], execute: Execute, address: str | None = None, num_cpus: int | None = None
) -> Iterator[tuple[RunSpec, pd.DataFrame]]:
    """On a Ray cluster at ``address``, or on a local Ray instance (``num_cpus``, default min(2, cores))."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        raise SpecError(
            "--executor ray: the 'ray' package is not installed (pip install 'ray[default]')"
        ) from None
    started = not ray.is_initialized()
    if started:
        if address:
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SpecError(f"--address {address}: cannot connect to the Ray cluster: {first}") from None
        else:
            ray.init(
                num_cpus=num_cpus or default_jobs(),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    try:
        remote = ray.remote(num_cpus=1)(_call)
        pending = {remote.remote(execute, run): run for run in runs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                run = pending.pop(ref)
                yield run, ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def check_executor(executor: str, address: str | None = None) -> None:
    """Refuse, in one line and before any output is written, an executor that cannot start."""
    if executor not in EXECUTORS:
        raise SpecError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    if address and executor != "ray":
        raise SpecError("--address is for --executor ray")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise SpecError("--executor ray: the 'ray' package is not installed (pip install 'ray[default]')")
    if (
        executor == "ray"
        and address
        and address.startswith("ray://")
        and importlib.util.find_spec("grpc") is None
    ):
        raise SpecError(
            f"--address {address}: a ray:// address needs the Ray client (pip install 'ray[client]')"
        )


def execute_runs(
    runs: Sequence[RunSpec],
    execute: Execute,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    desc: str = "runs",
) -> Iterator[tuple[RunSpec, pd.DataFrame]]:
    """Run ``runs`` with the named executor, with a progress bar over runs (a line per finished run,
    or per few runs, when stderr is not a terminal)."""
    check_executor(executor, address)
    it = run_local(runs, execute, jobs) if executor == "local" else run_ray(runs, execute, address, jobs)
    lines = StepLines(len(runs), desc)
    with bar(len(runs), desc) as progress:
        for run, frame in it:
            progress.set_postfix_str(run.run_id, refresh=False)
            progress.update(1)
            lines.step(run.run_id)
            yield run, frame


__all__ = ["EXECUTORS", "check_executor", "default_jobs", "execute_runs", "run_local", "run_ray"]
