"""Executors: local processes and a local Ray instance give the same Predictions as in-process runs."""

from __future__ import annotations

import pandas as pd

from fairmed.studies.runner import run_study
from fairmed.studies.spec import resolve_spec

SPEC = {
    "name": "tiny_ray",
    "source": {"kind": "synth_embeddings", "seed": 1, "config": {"preset": "skin", "n": 200, "dim": 8}},
    "groups": ["fst:12-56"],
    "design": {"seeds": [0, 1]},
    "model": {"arch": "mlp", "hidden": 8},
    "strategies": ["groupdro"],
    "train": {"epochs": 1, "batch_size": 50},
    "audit": {"bootstrap": 10, "min_group_size": 5},
}


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["method", "seed", "split", "id"]).reset_index(drop=True)


def test_ray_and_process_pool_match_in_process(tmp_path):
    spec = resolve_spec(SPEC)
    inproc = run_study(spec, tmp_path / "inproc", jobs=1, report=False)
    pool = run_study(spec, tmp_path / "pool", jobs=2, report=False)
    ray = run_study(spec, tmp_path / "ray", executor="ray", jobs=2, report=False)
    assert len(inproc.predictions) == 2 * 80
    pd.testing.assert_frame_equal(_sorted(pool.predictions), _sorted(inproc.predictions))
    pd.testing.assert_frame_equal(_sorted(ray.predictions), _sorted(inproc.predictions))
    pd.testing.assert_frame_equal(
        ray.results.sort_values(list(ray.results.columns[:8])).reset_index(drop=True),
        inproc.results.sort_values(list(inproc.results.columns[:8])).reset_index(drop=True),
    )
