"""Feedback while a study runs: plain lines when stderr is a file or pipe, a warning before a paper
profile runs on a CPU."""

from __future__ import annotations

import pandas as pd
import pytest

from fairmed import progress
from fairmed.studies.executors import execute_runs
from fairmed.studies.kinds import RunSpec
from fairmed.studies.runner import _paper_on_cpu
from fairmed.studies.spec import load_spec


@pytest.fixture
def piped(monkeypatch):
    """stderr captured (not a terminal) and FAIRMED_PROGRESS unset: the ``lines`` mode."""
    monkeypatch.delenv("FAIRMED_PROGRESS", raising=False)
    assert progress.mode() == "lines"


def _one_row(run: RunSpec) -> pd.DataFrame:
    return pd.DataFrame({"id": [run.seed]})


def test_one_line_per_finished_run(piped, capsys):
    runs = [RunSpec("s", "c", "erm", seed, {}) for seed in range(3)]
    assert [r.seed for r, _ in execute_runs(runs, _one_row, jobs=1, desc="s")] == [0, 1, 2]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and lines[0].startswith("s: run 1/3 done (") and "left" in lines[0]
    assert lines[2].startswith("s: run 3/3 done (") and "left" not in lines[2]


def test_many_runs_print_about_max_lines(piped):
    lines = progress.StepLines(100, "big")
    printed = [lines.step() for _ in range(100)]
    assert sum(p is not None for p in printed) == progress.MAX_LINES
    assert printed[-1].startswith("big: run 100/100 done")


def test_off_and_terminal_modes_print_no_lines(monkeypatch, capsys):
    for flag, expected in (("0", "off"), ("1", "bar")):
        monkeypatch.setenv("FAIRMED_PROGRESS", flag)
        assert progress.mode() == expected and progress.StepLines(2, "x").step() is None
    assert capsys.readouterr().err == ""


def test_paper_profile_on_cpu_is_announced(piped, capsys):
    spec = load_spec("demo", profile="paper")
    spec.train["device"] = "cpu"
    assert _paper_on_cpu(spec, 15)
    assert (
        "demo: the paper profile is sized for a GPU and runs 15 run(s) on the CPU" in capsys.readouterr().err
    )
    assert not _paper_on_cpu(load_spec("demo", profile="cpu"), 15)


def test_profile_changes_are_printed_before_the_runs(piped, capsys, tmp_path, monkeypatch):
    from fairmed.studies import runner

    def stop(*args, **kwargs):
        raise KeyboardInterrupt  # the runs themselves are not what this test is about

    monkeypatch.setattr(runner, "execute_runs", stop)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study("demo", tmp_path / "out", profile="smoke", report=False)
    err = capsys.readouterr().err
    assert err.startswith("demo: profile smoke set source.config.n 3200 -> 240, source.config.size 32 -> 16")
    assert (tmp_path / "out" / "spec.yaml").read_text().splitlines()[1].startswith("# profile smoke set ")
