"""The study runner: spec -> runs -> ``OUT/runs/*.parquet`` -> tables -> report.

Layout of a study folder ``OUT``:
``spec.yaml`` (resolved spec + fairmed version, written first), ``runs/<run_id>.parquet`` (one
per finished run, written atomically: a rerun skips them, an interrupted run leaves nothing
half-written), ``versions.json``, ``cohort_summary.parquet``, ``predictions.parquet`` (all runs),
``results.parquet`` (the audit of ``audit.splits`` per run), ``tables/*.parquet`` (the kind's
``analyse``), then ``index.html`` + ``figures/`` (``fairmed.report.build_report``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from fairmed.errors import FairmedError, SpecError
from fairmed.io import read_table, write_json, write_table, write_text
from fairmed.progress import note
from fairmed.schema import RUN_KEYS
from fairmed.studies.executors import check_executor, default_jobs, execute_runs
from fairmed.studies.kinds import RunSpec, get_kind
from fairmed.studies.spec import StudySpec, load_spec

VERSION_PACKAGES = ("fairmed", "numpy", "pandas", "scipy", "torch", "torchvision", "pydantic", "ray")


@dataclass
class StudyOutcome:
    """What a study run produced, and which runs ran now vs were already on disk."""

    out_dir: Path
    spec: StudySpec
    runs: list[RunSpec]
    executed: list[str]
    skipped: list[str]
    predictions: pd.DataFrame
    results: pd.DataFrame
    report: Path | None


def versions() -> dict[str, str]:
    """Python and package versions (read from metadata; nothing is imported)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _spec_text(spec: StudySpec) -> str:
    body = spec.model_dump(mode="json")
    body.pop("base_dir", None)
    head = f"# resolved study spec (profile {spec.profile}); fairmed {versions().get('fairmed', '?')}\n"
    head += "".join(f"# {note}\n" for note in spec._profile_notes)
    return head + yaml.safe_dump(body, sort_keys=False)


def default_out_dir(spec: StudySpec) -> Path:
    """``fairmed-out/<the name the user typed>``: the built-in's name or the spec file's stem (a copy
    of a built-in keeping its ``name`` does not land in the built-in's folder); else the spec's name."""
    name = spec._typed_name or re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.name)
    return Path("fairmed-out") / name


def _check_folder(out: Path, spec: StudySpec) -> None:
    """Refuse to resume into a folder holding another spec's runs (the results would mix)."""
    existing = out / "spec.yaml"
    if not existing.exists():
        return
    old = yaml.safe_load(existing.read_text(encoding="utf-8")) or {}
    new = yaml.safe_load(_spec_text(spec))
    if old != new:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SpecError(
            f"{out}: holds runs of a different spec (changed: {', '.join(changed)}); use another --out or delete it"
        )


def with_keys(run: RunSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The run's Predictions with the run keys in front (``split`` from the kind)."""
    keys = pd.DataFrame({k: [v] * len(frame) for k, v in run.keys.items()})
    keys["seed"] = keys["seed"].astype("int64")
    body = frame.drop(columns=[c for c in run.keys if c in frame.columns]).reset_index(drop=True)
    return pd.concat([keys, body], axis=1)


def run_file(out: Path, run: RunSpec) -> Path:
    return out / "runs" / f"{run.run_id}.parquet"


STALE_DIRS: tuple[str, ...] = (".", "runs", "tables", "figures")


def remove_stale_temps(out: Path) -> list[Path]:
    """Delete the ``.*.tmp`` files an atomic writer killed mid-write (SIGKILL) left in ``OUT``,
    ``runs/``, ``tables/`` or ``figures/``; a rerun then starts from whole files only."""
    stale = [p for folder in STALE_DIRS for p in (out / folder).glob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink()
    return stale


def with_run_checkpoints(run: RunSpec) -> RunSpec:
    """``train.checkpoint_dir`` made ``<checkpoint_dir>/<run_id>``: runs side by side would otherwise
    overwrite each other's ``best.pt``."""
    train = run.spec.get("train") or {}
    if not train.get("checkpoint_dir"):
        return run
    folder = str(Path(train["checkpoint_dir"]) / run.run_id)
    return dataclasses.replace(run, spec={**run.spec, "train": {**train, "checkpoint_dir": folder}})


def _audit(spec: StudySpec, predictions: pd.DataFrame) -> pd.DataFrame:
    from fairmed.metrics.audit import audit

    a = spec.audit
    splits = list(a.splits) + (["val"] if isinstance(a.threshold, str) else [])
    frame = predictions[predictions["split"].isin(splits)] if "split" in predictions else predictions
    if spec.design.cv_folds and "fold" in frame.columns:
        # cross-validation: the folds of one repeat together are its out-of-fold predictions, every
        # image once; the repeat (seed) stays the unit of replication
        frame = frame.drop(columns="fold")
    values = None
    if "y_true" not in frame.columns:  # generative kinds: per-sample values
        from fairmed.schema import REGRESSION_VALUES

        values = [v for v in REGRESSION_VALUES if v in frame.columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = audit(
            frame,
            spec.group_specs(),
            threshold=a.threshold,
            bootstrap=a.bootstrap,
            ci=a.ci,
            permutations=a.permutations,
            adjust=a.adjust,
            seed=a.seed,
            intersect=a.intersect,
            min_group_size=a.min_group_size,
            values=values,
        )
    return result.to_frame()


def _cohort_summary(spec: StudySpec) -> pd.DataFrame | None:
    """Cohort.describe by the study's groups, overall and per split of the first seed."""
    if not spec.source:
        return None
    from fairmed.studies.classification import load_cohort, split_parts

    try:
        cohort = load_cohort(spec)
        groups = spec.group_specs()
        frames = [cohort.describe(groups).assign(split="all")]
    except FairmedError:  # a kind whose source is not one cohort with these groups: no summary
        return None
    try:
        parts = split_parts(spec, cohort, spec.design.seed_list()[0])
    except FairmedError:
        parts = {}
    frames += [part.describe(groups).assign(split=name) for name, part in parts.items()]
    table = pd.concat(frames, ignore_index=True)
    return table[["split", *[c for c in table.columns if c != "split"]]]


DROPPED_IMAGES = "dropped_images"  # OUT/tables/dropped_images.parquet: id, path, reason


def write_dropped_images(out: Path, spec: StudySpec) -> pd.DataFrame:
    """``lenient: true``: find the unreadable images once, before the runs (which then read the
    decoded cache), and list them in ``OUT/tables/dropped_images.parquet`` for the report."""
    from fairmed.studies.classification import load_cohort
    from fairmed.studies.kinds import write_tables

    dropped = pd.DataFrame(
        load_cohort(spec).meta.get("dropped_images") or [], columns=["id", "path", "reason"], dtype=object
    )
    write_tables(out, {DROPPED_IMAGES: dropped})
    return dropped


def study_out_dir(spec: StudySpec, out_dir: str | Path | None = None) -> Path:
    """``out_dir``, or :func:`default_out_dir`; refused (one line) when it cannot be written."""
    from fairmed.io import check_writable

    out = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    return check_writable(out, folder=True, option="--out")


def run_study(
    spec: StudySpec | str | Path,
    out_dir: str | Path | None = None,
    *,
    profile: str | None = None,
    executor: str = "local",
    jobs: int | None = None,
    address: str | None = None,
    report: bool = True,
    tolerance: float | None = None,
) -> StudyOutcome:
    """Run a study (a StudySpec, a YAML path or a built-in name) into ``out_dir``; resume if present.

    ``tolerance``: the report's fairness tolerance (largest gap at which a criterion holds);
    None = the spec's ``audit.tolerance``. It only shapes the report, so it is not part of the
    resolved spec a resume compares.
    """
    if not isinstance(spec, StudySpec):
        spec = load_spec(spec, profile=profile)
    elif profile is not None and profile != spec.profile:
        raise SpecError(
            f"profile {profile!r}: a resolved StudySpec has profile {spec.profile!r}; load it again"
        )
    out = study_out_dir(spec, out_dir)
    kind = get_kind(spec.kind)
    runs = kind.expand(spec)
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise SpecError(f"{spec.name}: two runs share an id; make config/method names unique")
    check_executor(executor, address)
    _check_folder(out, spec)
    for line in spec._profile_notes:  # what the profile changed; also in spec.yaml's header
        note(f"{spec.name}: {line}")
    write_text(out / "spec.yaml", _spec_text(spec))
    write_json(out / "versions.json", versions())

    remove_stale_temps(out)
    if spec.lenient:
        write_dropped_images(out, spec)
    todo = [with_run_checkpoints(r) for r in runs if not run_file(out, r).exists()]
    skipped = [r.run_id for r in runs if run_file(out, r).exists()]
    executed = []
    on_cpu = _paper_on_cpu(spec, len(todo))
    start = time.perf_counter()
    for run, frame in execute_runs(todo, kind.execute, executor, jobs, address, desc=spec.name):
        write_table(with_keys(run, frame), run_file(out, run))
        executed.append(run.run_id)
        if on_cpu and len(executed) == 1:
            first = time.perf_counter() - start
            waves = -(-len(todo) // (jobs or default_jobs()))
            note(
                f"{spec.name}: the first run took {first:.0f} s; all {len(todo)} runs: about {first * waves / 60:.0f} min"
            )

    predictions = pd.concat([read_table(run_file(out, r)) for r in runs], ignore_index=True)
    write_table(predictions, out / "predictions.parquet")
    summary = _cohort_summary(spec)
    if summary is not None:
        write_table(summary, out / "cohort_summary.parquet")
    results = _audit(spec, predictions)
    write_table(results, out / "results.parquet")
    if kind.analyse is not None:
        kind.analyse(out, spec, predictions, results)
    tol = spec.audit.tolerance if tolerance is None else tolerance
    index = _build_report(out, tol) if report else None
    return StudyOutcome(out, spec, runs, executed, skipped, predictions, results, index)


def _paper_on_cpu(spec: StudySpec, n_runs: int) -> bool:
    """Say, before it starts, that a paper profile (sized for a GPU) is about to run on a CPU."""
    if spec.profile != "paper" or not n_runs:
        return False
    device = str(spec.train.get("device", "auto"))
    if device == "auto":
        try:
            import torch
        except ImportError:
            return False
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu":
        return False
    note(
        f"{spec.name}: the paper profile is sized for a GPU and runs {n_runs} run(s) on the CPU here; "
        "expect hours (an estimate follows the first finished run; --profile cpu takes minutes)"
    )
    return True


def _build_report(out: Path, tolerance: float) -> Path | None:
    try:
        from fairmed.report import build_report
    except ImportError:  # the report module is optional at this layer
        return None
    return build_report(out, tolerance=tolerance)


__all__ = [
    "RUN_KEYS",
    "StudyOutcome",
    "default_out_dir",
    "remove_stale_temps",
    "run_file",
    "run_study",
    "versions",
    "with_keys",
    "with_run_checkpoints",
]
