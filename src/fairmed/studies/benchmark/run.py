"""Running the benchmark: the grid of runs (mechanism x method x seed) and one run's Predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fairmed.errors import SpecError
from fairmed.schema import Y_TRUE
from fairmed.studies.benchmark.settings import (
    CONV_ARCHS,
    ERM_FAMILY,
    MITIGATIONS,
    NOT_APPLICABLE,
    POST_PROCESSING,
    STRATEGIES,
)
from fairmed.studies.kinds import RunSpec, grid_runs
from fairmed.studies.spec import StudySpec, deep_merge


def methods_of(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """method -> params: the spec's strategies (``erm`` required) then the mitigations."""
    strategies = spec.strategy_names()
    if "erm" not in strategies:
        raise SpecError("benchmark: strategies must include 'erm' (the baseline of every comparison)")
    clash = set(strategies) & set(MITIGATIONS)
    if clash:
        raise SpecError(f"benchmark: strategies {sorted(clash)} are mitigation names; give them a 'label'")
    out = {name: {"strategy": fields} for name, fields in strategies.items()}
    out.update({m: {} for m in spec.settings().benchmark.mitigations})
    return out


def expand(spec: StudySpec) -> list[RunSpec]:
    """Every mechanism x method x seed; ERM-family runs come first within a mechanism."""
    settings = spec.settings().benchmark
    if isinstance(spec.audit.threshold, str):
        raise SpecError(
            "benchmark: audit.threshold must be a number (post-processed methods fix their own decisions)"
        )
    methods = methods_of(spec)
    order = {m: methods[m] for m in ERM_FAMILY if m in methods}
    order.update({m: p for m, p in methods.items() if m not in order})
    configs = {m.name: m.run_params() for m in settings.mechanisms}
    return grid_runs(spec, order, configs)


def mechanism_spec(spec: StudySpec, params: dict[str, Any]) -> StudySpec:
    """The study spec of one configuration (:meth:`Mechanism.run_params`): its source merged in (or
    replacing the study's), its model and train settings when it names them."""
    source = params.get("source") or {}
    update: dict[str, Any] = {
        "source": dict(source) if params.get("replace_source") else deep_merge(spec.source, source)
    }
    if params.get("model") is not None:
        update["model"] = params["model"]
    if params.get("train"):
        update["train"] = deep_merge(spec.train, params["train"])
    return spec.model_copy(update=update)


def train_config(spec: StudySpec) -> dict[str, Any]:
    """The train settings of a run: one torch thread unless the spec says otherwise."""
    # one torch thread per run unless the spec (or FAIRMED_RUN_THREADS) says otherwise, as other kinds
    return {"num_threads": 1, **spec.train_settings()}


def model_spec(spec: StudySpec):
    """The spec's validated ModelSpec (its arch and whether it trains on frozen features)."""
    from fairmed.models.spec import ModelSpec
    from fairmed.train.config import as_spec

    return as_spec(ModelSpec, spec.model or None, "model")


def _n_groups(cohort, groups) -> int:
    from fairmed.data.groups import GroupSpec

    if groups is None:
        return 0
    g = GroupSpec.parse(groups) if isinstance(groups, str) else GroupSpec.model_validate(groups)
    assigned = g.assign(cohort.table).groups
    return int(assigned.dropna().nunique())


def applicability(spec: StudySpec, parts: dict, binary: bool) -> dict[str, str]:
    """method -> why it cannot run here ("" when it can)."""
    groups = spec.groups[0] if spec.groups else None
    n_groups = _n_groups(parts["train"], groups)
    mspec = model_spec(spec)
    arch = f"{mspec.arch} (frozen features)" if mspec.frozen else mspec.arch
    out = {m: "" for m in (*STRATEGIES, *MITIGATIONS)}
    if not binary:
        for m in ("gce", *POST_PROCESSING):
            out[m] = "needs a binary label (one score per sample)"
    if n_groups < 2:
        for m in POST_PROCESSING:
            out[m] = out[m] or f"needs at least two groups, found {n_groups}"
    if n_groups != 2:
        out["laftr"] = f"needs exactly two groups (its audit is binary), found {n_groups}"
        for m in ("fairprune", "scp"):
            out[m] = f"needs exactly two groups (privileged, unprivileged), found {n_groups}"
    if mspec.frozen or mspec.arch not in CONV_ARCHS:
        out["scp"] = out["scp"] or f"not applicable to arch {arch}: SCP prunes conv channels"
    return out


def not_applicable(reason: str) -> pd.DataFrame:
    """The one row a method that cannot run returns (ignored by the audit, read by analyse)."""
    return pd.DataFrame({"split": [NOT_APPLICABLE], "id": ["-"], Y_TRUE: [-1], "note": [reason]})


def _is_binary(cohort, label: str) -> bool:
    names = cohort.class_names.get(label)
    values = np.unique(cohort.y(label))
    return (not names or len(names) <= 2) and bool(np.isin(values, [0, 1]).all())


def execute(run: RunSpec) -> pd.DataFrame:
    """One method on one mechanism's seeded split: its val/test Predictions (or a not-applicable row)."""
    from fairmed.studies.classification import load_cohort, split_parts

    spec = mechanism_spec(run.study_spec(), run.params)
    settings = spec.settings().benchmark
    cohort = load_cohort(spec)
    parts = split_parts(spec, cohort, run.seed, run.fold)
    label = spec.label or cohort.label
    reasons = applicability(spec, parts, _is_binary(cohort, label))
    strategy = run.params.get("strategy") or {}
    reason = reasons.get(run.method) or reasons.get(
        strategy.get("name", "") if isinstance(strategy, dict) else ""
    )
    if reason:
        return not_applicable(reason)
    groups = spec.groups[0] if spec.groups else None
    if run.method in ERM_FAMILY:
        from fairmed.studies.benchmark.family import cached_family

        family = cached_family(spec, settings, run, parts, reasons)
        return family[family["method"] == run.method].drop(columns="method").reset_index(drop=True)
    if run.method == "gce":
        from fairmed.mitigate.gce import resample_and_fit

        result = resample_and_fit(
            parts["train"],
            parts["val"],
            parts["test"],
            resampling=settings.gce.resampling,
            attributes=spec.groups,
            detector_loss=settings.gce.detector_loss,
            gce_q=settings.gce.gce_q,
            model=spec.model or None,
            config=train_config(spec),
            seed=run.seed,
            label=spec.label,
            threshold=float(spec.audit.threshold),
            groups=groups,
        )
        return result.predictions
    from fairmed.train import fit_predict

    return fit_predict(
        parts["train"],
        parts["val"],
        parts["test"],
        model=spec.model or None,
        strategy=run.params["strategy"],
        config=train_config(spec),
        groups=groups,
        seed=run.seed,
        label=spec.label,
    )
