"""The generic classification study kind: source -> groups -> patient-level split -> fit_predict.

Runs: every strategy x seed (``config = "default"``). A run loads the source (cached per process),
with a frozen backbone (``model.frozen``) embeds the whole cohort once (features cached on disk and
per process, so every split, seed and strategy reuses them and trains only the head), splits it with :func:`~fairmed.design.splits.split_cohort` seeded by the run's seed, trains with
:func:`fairmed.train.fit_predict` (the first group of ``groups`` drives the group-based
strategies) and returns the val and test Predictions. ``analyse`` writes ``tables/gaps.parquet``:
per method, the mean over seeds of each audited metric per group and of the worst-group gap.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from fairmed.data.cohort import Cohort
from fairmed.design.splits import cv_split, split_cohort
from fairmed.errors import SpecError
from fairmed.studies.kinds import RunSpec, StudyKind, grid_runs, write_tables
from fairmed.studies.spec import StudySpec


def expand(spec: StudySpec) -> list[RunSpec]:
    return grid_runs(spec, spec.strategy_names())


@lru_cache(maxsize=2)
def _load(source_json: str, base_dir: str | None, screen_json: str | None = None) -> Cohort:
    from fairmed.data.sources import load_source

    cohort = load_source(json.loads(source_json), base_dir=base_dir)
    if screen_json is not None and cohort.pixel_source == "files":
        from fairmed.data.images import readable_subset

        size, cache = json.loads(screen_json)
        cohort = readable_subset(cohort, size, None if cache is None else Path(cache) / "images")
    return cohort


def _screen(spec: StudySpec) -> str | None:
    """With ``lenient: true``: the image size and cache folder the runs decode at, so that the
    unreadable files are found (and dropped) once, in the cache the runs then read."""
    if not spec.lenient:
        return None
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import TrainConfig, as_spec

    model = as_spec(ModelSpec, spec.model or None, "model")
    cache = as_spec(TrainConfig, spec.train, "train").cache_dir
    return json.dumps([model.image_size, None if cache is None else str(cache)])


def load_cohort(spec: StudySpec) -> Cohort:
    """The study's cohort (cached per process, so runs in one worker load it once); with ``lenient:
    true`` without the rows whose image cannot be decoded (listed in ``meta["dropped_images"]``)."""
    return _load(json.dumps(spec.source, sort_keys=True), spec.base_dir, _screen(spec))


@lru_cache(maxsize=2)
def _embedded(
    source_json: str,
    base_dir: str | None,
    model_json: str,
    cache_dir: str | None,
    device: str,
    screen_json: str | None = None,
) -> Cohort:
    from fairmed.models.features import embed_cohort
    from fairmed.models.spec import ModelSpec

    cohort = _load(source_json, base_dir, screen_json)
    return embed_cohort(cohort, ModelSpec.model_validate_json(model_json), cache_dir, device)


def training_cohort(spec: StudySpec, train: dict[str, Any]) -> tuple[Cohort, dict[str, Any] | str | None]:
    """The cohort runs train on and the model they train: the source and ``spec.model``, or, when the
    backbone is frozen, the cohort embedded by it once and the MLP head to train on the embeddings
    (the same network and initialisation as the per-split frozen path, without rerunning the backbone)."""
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import TrainConfig, as_spec

    model = as_spec(ModelSpec, spec.model or None, "model")
    if not model.frozen:
        return load_cohort(spec), spec.model or None
    from fairmed.models.features import head_spec
    from fairmed.train.loop import resolve_device

    config = as_spec(TrainConfig, train, "train")
    cache = None if config.cache_dir is None else str(config.cache_dir)
    device = str(resolve_device(config.device))
    source = json.dumps(spec.source, sort_keys=True)
    cohort = _embedded(source, spec.base_dir, model.model_dump_json(), cache, device, _screen(spec))
    return cohort, head_spec(model).model_dump(mode="json")


def split_parts(spec: StudySpec, cohort: Cohort, seed: int, fold: int | None = None) -> dict[str, Cohort]:
    """The study's train/val/test cohorts for one seed (and fold, with ``design.cv_folds``; fold 0
    when not given)."""
    design = spec.design
    label = spec.label or cohort.label
    if label not in cohort.labels:
        raise SpecError(f"label: {label!r} is not a label of the cohort (it has {', '.join(cohort.labels)})")
    stratify = design.stratify if design.stratify is not None else [label]
    if design.cv_folds:
        val = design.fractions["val"] / max(design.fractions["train"] + design.fractions["val"], 1e-12)
        parts = cv_split(cohort, design.cv_folds, fold or 0, seed, val, design.group_by, stratify)
    else:
        parts = split_cohort(cohort, design.fractions, seed, design.group_by, stratify)
    return {name: cohort.subset(pos) for name, pos in parts.items()}


def execute(run: RunSpec) -> pd.DataFrame:
    """Train one strategy on one seeded split; Predictions of val and test."""
    from fairmed.train import fit_predict

    spec = run.study_spec()
    # one torch thread per run unless the spec (or FAIRMED_RUN_THREADS) says otherwise: runs are then
    # bit-identical whichever executor (in-process, worker processes, Ray) runs them, and `jobs` runs
    # share the cores
    train = {"num_threads": 1, **spec.train_settings()}
    cohort, model = training_cohort(spec, train)
    parts = split_parts(spec, cohort, run.seed, run.fold)
    groups = spec.groups[0] if spec.groups else None
    return fit_predict(
        parts["train"],
        parts["val"],
        parts["test"],
        model=model,
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
    cross_validation=True,
)

__all__ = [
    "KIND",
    "analyse",
    "execute",
    "expand",
    "gap_table",
    "load_cohort",
    "split_parts",
    "training_cohort",
]
