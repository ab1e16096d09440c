"""A SIGKILLed `fairmed run` driver takes its worker processes with it (Linux /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairmed.studies.executors import die_with_parent


@pytest.fixture(autouse=True)
def linux_proc():
    """These tests read process parents and states from /proc: fairmed's worker lifetime (the
    parent-death signal) is a Linux feature, so without /proc they fail with this line, not skip."""
    if not Path("/proc/self/stat").exists():
        pytest.fail("tests/test_process_lifetime.py needs Linux /proc (reads /proc/<pid>/stat)")


SPEC = """\
name: endless
kind: classification
source: {kind: synth_embeddings, seed: 0, config: {preset: cxr, n: 300, dim: 8}}
groups: [sex]
design: {seeds: [0, 1], stratify: [no_finding]}
model: {arch: mlp, hidden: 8}
strategies: [erm]
train: {epochs: 100000, batch_size: 64}
audit: {bootstrap: 0}
"""


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _state(pid: int) -> str | None:
    """The process state letter; None once it is gone (Z: dead, waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _descendants(root: int) -> set[int]:
    parents = {int(p): _parent(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pids: set[int]) -> set[int]:
    return {p for p in pids if _state(p) not in (None, "Z")}


def test_die_with_parent_is_available_on_linux():
    assert die_with_parent() is sys.platform.startswith("linux")


def test_sigkill_of_the_driver_leaves_no_worker(tmp_path):
    spec = tmp_path / "endless.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FAIRMED_PROGRESS": "0"}
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fairmed.cli",
            "run",
            str(spec),
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(children) < 3:  # forkserver + 2 workers
            assert driver.poll() is None, driver.stderr.read().decode()[-500:]
            time.sleep(0.5)
            children = _running(_descendants(driver.pid))
        assert len(children) >= 3, f"workers did not start: {children}"
        time.sleep(1.0)  # the workers are inside their runs
        children = _running(_descendants(driver.pid))
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        deadline = time.monotonic() + 15
        while _running(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(children), f"left running after the driver was killed: {_running(children)}"
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in _running(children | _descendants(driver.pid)):  # never leave one behind
            os.kill(pid, signal.SIGKILL)
