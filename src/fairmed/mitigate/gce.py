"""GCE-guided up/down-sampling end to end: detector -> plan -> retrained classifier.

The three steps of "Bias Mitigation for Medical Images" (docs/gce.md), each through fairmed's
one training loop:

1. :func:`detect_bias`: a detector (the same model as the classifier) is trained with the
   generalized cross-entropy (``detector_loss="gce"``, ``q = gce_q``) or, for the ablation, with
   BCE; its per-sample training losses (``Trained.fit.train_losses``, the loss the detector was
   trained with) and its decisions on the training set (score >= ``threshold``) are returned as a
   Predictions-like frame (split ``train``, plus ``loss``).
2. :func:`plan_from_detector`: the FPR of every subgroup of the chosen attributes from those
   decisions (or, ``fpr_from: baseline_val``, from the plain classifier's decisions on the
   validation split: :func:`baseline_rates`), and :func:`~fairmed.mitigate.resampling.plan_resampling` turns losses + FPRs into
   the rows to drop and duplicate.
3. The classifier is retrained on ``train.take(plan.positions)`` (plain ERM, BCE) and predicts
   the untouched ``val`` and ``test`` splits.

:func:`resample_and_fit` runs all three; pass ``detector=`` (a frame from :func:`detect_bias` on
the same training set) to reuse one detector across several resampling settings, as the study
does for its methods. Torch lives here; :mod:`fairmed.mitigate.resampling` stays numpy-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from fairmed.data.cohort import ID, Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import DataError, InputError, SpecError
from fairmed.mitigate.resampling import (
    DECISION_COLUMNS,
    Rates,
    ResamplingConfig,
    ResamplingPlan,
    false_positive_rates,
    plan_resampling,
)
from fairmed.schema import Y_PRED, Y_SCORE, Y_TRUE

DetectorLoss = Literal["gce", "bce"]
LOSS = "loss"
DETECTOR_COLUMNS = ["split", ID, Y_TRUE, Y_SCORE, Y_PRED, LOSS]
PLAN_COLUMNS = DECISION_COLUMNS


@dataclass(frozen=True)
class GceResult:
    """What :func:`resample_and_fit` returns."""

    predictions: pd.DataFrame  # Predictions of the retrained classifier, split "val" and "test"
    plan: ResamplingPlan  # the resampled training set and the per-subgroup decisions
    detector: pd.DataFrame  # the detector's Predictions on the training set (split "train", + loss)


def as_resampling(value: ResamplingConfig | dict | None) -> ResamplingConfig:
    """A :class:`ResamplingConfig` from a config, a dict of fields, or None (the paper's defaults)."""
    if isinstance(value, ResamplingConfig):
        return value
    try:
        return ResamplingConfig.model_validate(value or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise SpecError(f"resampling.{loc}: {err['msg']} (got {err.get('input')!r})") from None


def as_group_specs(attributes: Sequence[GroupSpec | str] | GroupSpec | str) -> list[GroupSpec]:
    """GroupSpecs from specs or short forms (``"race"``, ``"age:20,40,60,80"``)."""
    if isinstance(attributes, GroupSpec | str):
        attributes = [attributes]
    specs = [GroupSpec.parse(a) if isinstance(a, str) else a for a in attributes]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"attributes: names repeat ({names})")
    return specs


def _binary_label(train: Cohort, label: str) -> None:
    if label not in train.table.columns:
        raise DataError(
            f"{train.name}: label column {label!r} not found (columns: {list(train.table.columns)})"
        )
    values = set(np.unique(train.y(label)).tolist())
    if not values <= {0, 1}:
        raise DataError(
            f"{train.name}: GCE resampling needs a binary label (FPR per subgroup); {label!r} has {sorted(values)}"
        )


def detect_bias(
    train: Cohort,
    val: Cohort,
    *,
    detector_loss: DetectorLoss = "gce",
    gce_q: float = 0.7,
    model=None,
    config=None,
    seed: int | None = None,
    label: str | None = None,
    threshold: float = 0.5,
    groups: GroupSpec | str | None = None,
) -> pd.DataFrame:
    """Train the bias detector; its Predictions on ``train`` with each row's training loss.

    ``groups``: the grouping of group-based model selection (``select: worst_group_auc``).

    Columns: ``split`` ("train"), ``id``, ``y_true``, ``y_score``, ``y_pred`` (score >=
    ``threshold``), ``loss`` (the per-sample loss the detector was trained with: GCE or BCE) and
    the cohort's raw attributes; one row per training row, in order.
    """
    from fairmed.train import train_model

    if detector_loss not in ("gce", "bce"):
        raise SpecError(f"detector_loss: expected 'gce' or 'bce', got {detector_loss!r}")
    label = label or train.label
    _binary_label(train, label)
    trained = train_model(
        train,
        val,
        model=model,
        strategy={"name": "erm", "loss": detector_loss, "gce_q": gce_q},
        config=config,
        groups=groups,
        seed=seed,
        label=label,
        desc=f"detector ({detector_loss})",
    )
    frame = trained.predict(train, "train")
    frame[Y_PRED] = (frame[Y_SCORE].to_numpy() >= threshold).astype(np.int64)
    losses = trained.fit.train_losses
    frame[LOSS] = losses.reindex(frame[ID].to_numpy()).to_numpy(dtype=np.float64)
    return frame[[*DETECTOR_COLUMNS, *(c for c in frame.columns if c not in DETECTOR_COLUMNS)]]


def baseline_rates(
    baseline: pd.DataFrame,
    val: Cohort,
    attributes: Sequence[GroupSpec | str] | GroupSpec | str,
    threshold: float = 0.5,
    label: str | None = None,
) -> Rates:
    """Per attribute, the subgroup FPRs and the overall FPR of the baseline classifier's decisions
    (score >= ``threshold``) on the validation split (``fpr_from: baseline_val``)."""
    frame = baseline[baseline["split"] == "val"] if "split" in baseline.columns else baseline
    scores = frame.set_index(ID)[Y_SCORE].reindex(val.ids)
    if scores.isna().any():
        raise InputError(
            f"baseline predictions: no validation score for {int(scores.isna().sum())} of {len(val)} rows"
        )
    y_pred = (scores.to_numpy(dtype=float) >= threshold).astype(np.int64)
    y_true = np.asarray(val.y(label or val.label))
    return {
        spec.name: false_positive_rates(y_true, y_pred, spec.assign(val.table).groups.reset_index(drop=True))
        for spec in as_group_specs(attributes)
    }


def plan_from_detector(
    detector: pd.DataFrame,
    train: Cohort,
    attributes: Sequence[GroupSpec | str] | GroupSpec | str,
    resampling: ResamplingConfig | dict | None = None,
    rates: Rates | None = None,
) -> ResamplingPlan:
    """The resampling plan of ``train`` from a detector frame of the same rows (see module docstring);
    ``rates`` (from :func:`baseline_rates`) replaces the detector's training-split FPRs."""
    cfg = as_resampling(resampling)
    n = len(train)
    if cfg.mode == "none":
        empty = pd.DataFrame(columns=PLAN_COLUMNS)
        return ResamplingPlan(np.arange(n), np.zeros(0, np.int64), np.zeros(0, np.int64), empty)
    missing = [c for c in (ID, Y_TRUE, Y_PRED, LOSS) if c not in detector.columns]
    if missing:
        raise InputError(f"detector frame: missing columns {missing} (expected the output of detect_bias)")
    if len(detector) != n or not np.array_equal(detector[ID].to_numpy(), train.ids):
        raise InputError(
            f"detector frame: its {len(detector)} rows are not the {n} training rows in order"
            " (run detect_bias on this training set)"
        )
    groups = {
        spec.name: spec.assign(train.table).groups.reset_index(drop=True)
        for spec in as_group_specs(attributes)
    }
    return plan_resampling(
        detector[LOSS].to_numpy(dtype=float),
        detector[Y_TRUE].to_numpy(),
        detector[Y_PRED].to_numpy(),
        groups,
        cfg,
        rates,
    )


def resample_and_fit(
    train: Cohort,
    val: Cohort,
    test: Cohort,
    *,
    resampling: ResamplingConfig | dict | None,
    attributes: Sequence[GroupSpec | str] | GroupSpec | str,
    detector_loss: DetectorLoss = "gce",
    gce_q: float = 0.7,
    model=None,
    config=None,
    seed: int | None = None,
    label: str | None = None,
    threshold: float = 0.5,
    detector: pd.DataFrame | None = None,
    groups: GroupSpec | str | None = None,
    baseline: pd.DataFrame | None = None,
) -> GceResult:
    """Detector -> resampling plan -> classifier retrained on the resampled ``train``.

    ``resampling``: a :class:`ResamplingConfig` or its fields (``mode`` none/down/up/down_up,
    ``up_fraction``, ``down_fraction``, ``min_share``, ...). ``attributes``: whose subgroups are
    resampled. ``detector``: a frame from :func:`detect_bias` on this ``train`` to reuse (then
    ``detector_loss``/``gce_q``/``threshold`` are not used); with mode ``none`` no detector is
    trained (an empty frame comes back) and the classifier sees ``train`` as is. The classifier is
    plain ERM with BCE, seeded by ``seed``; its Predictions are exactly :func:`fairmed.train.fit_predict`'s.
    ``groups``: the grouping of group-based model selection (``select: worst_group_auc``) for the
    detector and the classifier; default the first of ``attributes``, so every rule of the one loop
    applies here as it does to the other methods. ``baseline``: the plain classifier's Predictions
    (split ``val``) for ``fpr_from: baseline_val``; trained here when not given.
    """
    from fairmed.train import fit_predict

    cfg = as_resampling(resampling)
    specs = as_group_specs(attributes)
    groups = specs[0] if groups is None and specs else groups
    label = label or train.label
    if cfg.mode == "none":
        detector = pd.DataFrame(columns=DETECTOR_COLUMNS)
    elif detector is None:
        detector = detect_bias(
            train,
            val,
            detector_loss=detector_loss,
            gce_q=gce_q,
            model=model,
            config=config,
            seed=seed,
            label=label,
            threshold=threshold,
            groups=groups,
        )

    def classify(rows: Cohort) -> pd.DataFrame:  # the plain ERM classifier on ``rows``
        return fit_predict(
            rows, val, test, model=model, strategy="erm", config=config, groups=groups, seed=seed, label=label
        )

    rates = None
    if cfg.mode != "none" and cfg.fpr_from == "baseline_val":
        baseline = classify(train) if baseline is None else baseline
        rates = baseline_rates(baseline, val, specs, threshold, label)
    plan = plan_from_detector(detector, train, specs, cfg, rates)
    predictions = classify(train if cfg.mode == "none" else train.take(plan.positions))
    return GceResult(predictions=predictions, plan=plan, detector=detector)


__all__ = [
    "DETECTOR_COLUMNS",
    "GceResult",
    "as_group_specs",
    "as_resampling",
    "baseline_rates",
    "detect_bias",
    "plan_from_detector",
    "resample_and_fit",
]
