"""The generic classification study kind: source -> groups -> patient-level split -> fit_predict.

Runs: every strategy x seed (``config = "default"``). A run loads the source (cached per process),
splits it with :func:`~fairmed.design.splits.split_cohort` seeded by the run's seed, trains with
:func:`fairmed.train.fit_predict` (the first group of ``groups`` drives the group-based
strategies) and returns the val and test Predictions. ``analyse`` writes ``tables/gaps.parquet``:
per method, the mean over seeds of each audited metric per group and of the worst-group gap.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pandas as pd

from fairmed.data.cohort import Cohort
from fairmed.design.splits import split_cohort
from fairmed.studies.kinds import RunSpec, StudyKind, grid_runs, write_tables
from fairmed.studies.spec import StudySpec


def expand(spec: StudySpec) -> list[RunSpec]:
    return grid_runs(spec, spec.strategy_names())


@lru_cache(maxsize=2)
def _load(source_json: str, base_dir: str | None) -> Cohort:
    from fairmed.data.sources import load_source

    return load_source(json.loads(source_json), base_dir=base_dir)


def load_cohort(spec: StudySpec) -> Cohort:
    """The study's cohort (cached per process, so runs in one worker load it once)."""
    return _load(json.dumps(spec.source, sort_keys=True), spec.base_dir)


def split_parts(spec: StudySpec, cohort: Cohort, seed: int) -> dict[str, Cohort]:
    """The study's train/val/test cohorts for one seed."""
    label = spec.label or cohort.label
    stratify = spec.design.stratify if spec.design.stratify is not None else [label]
    parts = split_cohort(cohort, spec.design.fractions, seed, spec.design.group_by, stratify)
    return {name: cohort.subset(pos) for name, pos in parts.items()}


def execute(run: RunSpec) -> pd.DataFrame:
    """Train one strategy on one seeded split; Predictions of val and test."""
    from fairmed.train import fit_predict

    spec = run.study_spec()
    cohort = load_cohort(spec)
    parts = split_parts(spec, cohort, run.seed)
    # one torch thread per run unless the spec says otherwise: runs are then bit-identical whichever
    # executor (in-process, worker processes, Ray) runs them, and `jobs` runs share the cores
    train = {"num_threads": 1, **spec.train}
    groups = spec.groups[0] if spec.groups else None
    return fit_predict(
        parts["train"],
        parts["val"],
        parts["test"],
        model=spec.model or None,
        strategy=run.params,
        config=train,
        groups=groups,
        seed=run.seed,
        label=spec.label,
    )


def gap_table(results: pd.DataFrame, metrics=("auc", "tpr", "fpr", "accuracy")) -> pd.DataFrame:
    """Per (split, method, attribute, metric): mean over seeds of each group's value and of the gaps."""
    if results.empty:
        return results
    rows = results[results["metric"].isin(metrics) & results["split"].notna()]
    keys = ["split", "method", "attribute", "group", "metric"]
    table = rows.groupby(keys, sort=False, dropna=False).agg(
        value=("value", "mean"), sd=("value", "std"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")
    )
    return table.reset_index()


def analyse(out_dir: Path, spec: StudySpec, predictions: pd.DataFrame, results: pd.DataFrame) -> None:
    write_tables(out_dir, {"gaps": gap_table(results)})


KIND = StudyKind(
    name="classification",
    expand=expand,
    execute=execute,
    analyse=analyse,
    description="train a classifier per strategy x seed on a patient-level split; audit the test split",
)

__all__ = ["KIND", "analyse", "execute", "expand", "gap_table", "load_cohort", "split_parts"]
