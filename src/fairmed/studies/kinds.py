"""The registry of study kinds: what a study's ``kind:`` names, looked up lazily.

A study kind turns a validated :class:`~fairmed.studies.spec.StudySpec` into runs and runs them:

- ``expand(spec) -> list[RunSpec]``: the grid (strategy x configuration x seed ...);
- ``execute(run) -> pd.DataFrame``: Predictions of one run (``split``, ``id``, ``y_true``, scores,
  attributes); a pure function of the run, defined at a module's top level so process pools and
  Ray can pickle it; the runner adds the run keys;
- ``analyse(out_dir, spec, predictions, results) -> None`` (optional): extra tidy tables written to
  ``OUT/tables/<name>.parquet`` (use :func:`write_tables`) for the kind's report section;
- ``fields`` (optional): a pydantic model (``extra="forbid"``) of the kind's own top-level spec
  fields; ``spec.settings()`` returns them validated. Without it, unknown fields are errors.
- ``terminal(out_dir) -> list[str]`` (optional): lines `fairmed run` prints at the end (e.g. the
  paper-shaped tables), read from what ``analyse`` wrote.
- ``baseline_keys`` (optional): the run keys whose value names the baseline (e.g. ``("method",)``):
  the report's summary compares each run with the baseline that shares its other keys (the same
  ``config``: a method with ERM on the same mechanism, never on another data set). Empty: one
  baseline for the whole study.
- ``cross_validation``: True when its runs honour ``design.cv_folds`` (split by ``run.fold``); a spec
  with ``cv_folds`` for any other kind is refused.

The registry maps a name to ``"module:attribute"`` so that importing it (``fairmed studies list``,
spec validation) imports no torch. Add a kind with one line in :data:`KINDS`, or at run time with
:func:`register_kind`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel

from fairmed.errors import SpecError

if TYPE_CHECKING:
    from fairmed.studies.spec import StudySpec

# kind name -> "module:attribute" of a StudyKind (imported on first use)
KINDS: dict[str, str | StudyKind] = {
    "classification": "fairmed.studies.classification:KIND",
    "channel_pruning": "fairmed.studies.pruning:STUDY_KIND",
    "composition": "fairmed.studies.sex_ratio:STUDY_KIND",
    "vae_fairness": "fairmed.studies.vae:STUDY_KIND",
    "gce_resampling": "fairmed.studies.gce:STUDY_KIND",
    "benchmark": "fairmed.studies.benchmark:STUDY_KIND",
}


@dataclass(frozen=True)
class RunSpec:
    """One run of a study: its keys plus everything needed to execute it.

    ``spec`` is the whole resolved study spec as a JSON-ready dict (``StudySpec.model_dump``),
    ``params`` the per-run parameters the kind chose in ``expand`` (JSON-ready values), and
    ``base_dir`` the folder relative source paths resolve against (the YAML's folder).
    """

    study: str
    config: str
    method: str
    seed: int
    spec: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    base_dir: str | None = None
    fold: int | None = None  # the cross-validation fold (design.cv_folds), None without

    @property
    def run_id(self) -> str:
        """A file-name-safe id, unique within a study: ``<config>__<method>__s<seed>[__f<fold>]``."""
        raw = f"{self.config}__{self.method}__s{self.seed}" + ("" if self.fold is None else f"__f{self.fold}")
        return re.sub(r"[^A-Za-z0-9_.=-]+", "-", raw)

    @property
    def keys(self) -> dict[str, Any]:
        """The run keys of the Predictions/Results tables (``split`` comes from the kind)."""
        keys = {"study": self.study, "config": self.config, "method": self.method, "seed": self.seed}
        return keys if self.fold is None else {**keys, "fold": self.fold}

    def study_spec(self) -> StudySpec:
        """The validated StudySpec back from the dict (cheap; no file access)."""
        from fairmed.studies.spec import StudySpec

        return StudySpec.model_validate(self.spec)


@dataclass(frozen=True)
class StudyKind:
    """What a study kind does; see the module docstring."""

    name: str
    expand: Callable[[StudySpec], list[RunSpec]]
    execute: Callable[[RunSpec], pd.DataFrame]
    analyse: Callable[[Path, StudySpec, pd.DataFrame, pd.DataFrame], None] | None = None
    fields: type[BaseModel] | None = None
    description: str = ""
    terminal: Callable[[Path], list[str]] | None = None
    baseline_keys: tuple[str, ...] = ()
    cross_validation: bool = False  # its runs honour design.cv_folds (the fold of each RunSpec)


def register_kind(name: str, target: str | StudyKind) -> None:
    """Register a kind by ``"module:attribute"`` (lazy) or as an object (e.g. in tests)."""
    if isinstance(target, str) and ":" not in target:
        raise SpecError(f"study kind {name!r}: target must be 'module:attribute', got {target!r}")
    KINDS[name] = target


def kind_names() -> list[str]:
    return sorted(KINDS)


def get_kind(name: str) -> StudyKind:
    """The StudyKind registered as ``name`` (imports its module on first use)."""
    if name not in KINDS:
        raise SpecError(f"kind: unknown study kind {name!r} (known: {', '.join(kind_names())})")
    target = KINDS[name]
    if isinstance(target, StudyKind):
        return target
    module_name, attr = target.split(":")
    kind = getattr(importlib.import_module(module_name), attr)
    if not isinstance(kind, StudyKind):
        raise TypeError(f"{target} is not a StudyKind")
    KINDS[name] = kind
    return kind


def grid_runs(
    spec: StudySpec,
    methods: Mapping[str, dict[str, Any]],
    configs: Mapping[str, dict[str, Any]] | None = None,
) -> list[RunSpec]:
    """The common grid: every configuration x method x seed (x fold with ``design.cv_folds``), params
    merged (method wins)."""
    configs = configs or {"default": {}}
    dumped = spec.model_dump(mode="json")
    return [
        RunSpec(
            study=spec.name,
            config=config,
            method=method,
            seed=seed,
            spec=dumped,
            params={**cparams, **mparams},
            base_dir=spec.base_dir,
            fold=fold,
        )
        for config, cparams in configs.items()
        for method, mparams in methods.items()
        for seed in spec.design.seed_list()
        for fold in spec.design.fold_list()
    ]


def write_tables(out_dir: str | Path, tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Write an analyse() step's tables atomically as ``OUT/tables/<name>.parquet``."""
    from fairmed.io import write_table

    return [
        write_table(frame, Path(out_dir) / "tables" / f"{name}.parquet") for name, frame in tables.items()
    ]


__all__ = [
    "KINDS",
    "RunSpec",
    "StudyKind",
    "get_kind",
    "grid_runs",
    "kind_names",
    "register_kind",
    "write_tables",
]
