"""The runner: output files, resume (counted executions), nothing half-written after a failure or a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from fairmed.studies import classification
from fairmed.studies.kinds import KINDS, StudyKind, register_kind
from fairmed.studies.runner import run_study
from fairmed.studies.spec import resolve_spec

CALLS: list[str] = []

TINY = {
    "name": "tiny",
    "source": {"kind": "synth_embeddings", "seed": 0, "config": {"preset": "skin", "n": 240, "dim": 8}},
    "groups": ["fst:12-56", "sex"],
    "design": {"seeds": [0, 1]},
    "model": {"arch": "mlp", "hidden": 8},
    "strategies": ["erm", "reweight"],
    "train": {"epochs": 1, "batch_size": 64},
    "audit": {"bootstrap": 10, "min_group_size": 5},
}


def counting_execute(run):
    CALLS.append(run.run_id)
    if os.environ.get("FAIL_RUN") == run.run_id:
        raise RuntimeError("boom")
    return classification.execute(run)


@pytest.fixture
def counting():
    register_kind(
        "counting", StudyKind("counting", classification.expand, counting_execute, classification.analyse)
    )
    CALLS.clear()
    yield resolve_spec({**TINY, "kind": "counting"})
    KINDS.pop("counting")


def test_outputs_and_resume_skip_finished_runs(tmp_path, counting):
    out = tmp_path / "out"
    first = run_study(counting, out, jobs=1, report=False)
    ids = ["default__erm__s0", "default__erm__s1", "default__reweight__s0", "default__reweight__s1"]
    assert first.executed == ids and ids == CALLS and first.skipped == []
    names = {p.name for p in out.iterdir()}
    assert {
        "spec.yaml",
        "versions.json",
        "cohort_summary.parquet",
        "predictions.parquet",
        "results.parquet",
    } <= names
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{i}.parquet" for i in ids)
    pred = pd.read_parquet(out / "predictions.parquet")
    # 240 rows split 60/20/20 -> val 48 + test 48 per run, 4 runs
    assert len(pred) == 4 * 96
    assert list(pred.columns[:5]) == ["study", "config", "method", "seed", "split"]
    assert pred.groupby(["method", "seed"]).size().tolist() == [96] * 4
    res = pd.read_parquet(out / "results.parquet")
    assert set(res["split"]) == {"test"} and set(res["method"]) == {"erm", "reweight"}
    assert (out / "tables" / "gaps.parquet").exists()
    summary = pd.read_parquet(out / "cohort_summary.parquet")
    assert summary[(summary.split == "all") & (summary.attribute == "sex")]["n"].sum() == 240
    assert yaml.safe_load((out / "spec.yaml").read_text())["kind"] == "counting"

    (out / "runs" / "default__reweight__s1.parquet").unlink()
    CALLS.clear()
    again = run_study(counting, out, jobs=1, report=False)
    assert CALLS == ["default__reweight__s1"] and len(again.skipped) == 3
    pd.testing.assert_frame_equal(again.predictions, pred)
    CALLS.clear()
    run_study(counting, out, jobs=1, report=False)
    assert CALLS == []


def test_resume_refuses_a_different_spec(tmp_path, counting):
    out = tmp_path / "out"
    run_study(resolve_spec({**TINY, "kind": "counting", "design": {"seeds": [0]}}), out, jobs=1, report=False)
    with pytest.raises(Exception, match="holds runs of a different spec \\(changed: design\\)"):
        run_study(counting, out, jobs=1, report=False)


def test_failure_mid_write_leaves_no_partial_file(tmp_path, counting, monkeypatch):
    out = tmp_path / "out"
    real = pd.DataFrame.to_parquet

    def half_write(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write)
    with pytest.raises(OSError, match="disk full"):
        run_study(counting, out, jobs=1, report=False)
    assert list((out / "runs").iterdir()) == [] and not (out / "predictions.parquet").exists()
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    monkeypatch.setenv("FAIL_RUN", "default__reweight__s0")
    with pytest.raises(RuntimeError, match="boom"):
        run_study(counting, out, jobs=1, report=False)
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "default__erm__s0.parquet",
        "default__erm__s1.parquet",
    ]
    monkeypatch.delenv("FAIL_RUN")
    CALLS.clear()
    run_study(counting, out, jobs=1, report=False)
    assert CALLS == ["default__reweight__s0", "default__reweight__s1"]


def test_killed_process_leaves_only_whole_runs_and_resumes(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "design": {"seeds": [0, 1, 2]}}))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "fairmed.cli",
        "run",
        str(spec),
        "--out",
        str(out),
        "--jobs",
        "1",
        "--no-report",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "runs").glob("*.parquet")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted((out / "runs").glob("*.parquet"))
    assert 1 <= len(finished) < 6 and not (out / "predictions.parquet").exists()
    for f in finished:  # every run file on disk is whole
        assert len(pd.read_parquet(f)) == 96
    register_kind("classification", classification.KIND)
    outcome = run_study(spec, out, jobs=1, report=False)
    assert len(outcome.skipped) == len(finished) and len(outcome.executed) == 6 - len(finished)
    assert not list((out / "runs").glob(".*.tmp"))
    assert len(outcome.predictions) == 6 * 96
