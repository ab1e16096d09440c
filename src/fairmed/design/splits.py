"""Patient-level, stratified, seeded train/val/test splits of a Cohort.

Whole groups (patients, or lesions with ``group_by="lesion_id"``) go to one split, so no
patient's images leak between training and testing. Groups are stratified by the values of
``stratify`` (the label by default, optionally attributes) of their first row, and within each
stratum they are laid out in a seeded random order on a circle of circumference 1 with a random
start (systematic sampling): each split receives a run of groups whose row mass matches its
fraction, so split sizes are exact when the groups allow it, even in tiny strata. Vectorized over
groups; a repeat is a different ``seed``. :func:`cv_split` cuts the same circle into k equal arcs:
repeated, stratified, patient-level k-fold cross-validation, every row tested once per repeat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fairmed.data.cohort import Cohort
from fairmed.errors import SpecError

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.6, "val": 0.2, "test": 0.2}


def _check_fractions(fractions: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    names = list(fractions)
    values = np.asarray([float(fractions[n]) for n in names], dtype=float)
    if not names or (values < 0).any() or not np.isclose(values.sum(), 1.0, atol=1e-6):
        raise SpecError(f"split fractions must be >= 0 and sum to 1 (got {dict(fractions)})")
    return names, values


def _group_codes(table: pd.DataFrame, group_by: str | None) -> np.ndarray:
    """One code per row; rows without a group (no column, or an empty value) stand alone."""
    n = len(table)
    if group_by is None or (group_by == "patient_id" and group_by not in table.columns):
        return np.arange(n)
    if group_by not in table.columns:
        raise SpecError(
            f"split group_by: no column {group_by!r} in the cohort (have: {', '.join(table.columns)})"
        )
    codes, _ = pd.factorize(table[group_by], use_na_sentinel=True)
    alone = codes < 0
    codes = codes.astype(np.int64)
    codes[alone] = codes.max(initial=-1) + 1 + np.arange(int(alone.sum()))
    return codes


def _strata(table: pd.DataFrame, stratify: Sequence[str]) -> np.ndarray:
    """A code per row for the combination of the ``stratify`` columns (missing = its own value)."""
    missing = [c for c in stratify if c not in table.columns]
    if missing:
        raise SpecError(
            f"split stratify: no column(s) {missing} in the cohort (have: {', '.join(table.columns)})"
        )
    if not stratify:
        return np.zeros(len(table), dtype=np.int64)
    keys = table[list(stratify)].astype("object").where(table[list(stratify)].notna(), "<NA>").astype(str)
    codes, _ = pd.factorize(pd.MultiIndex.from_frame(keys))
    return codes.astype(np.int64)


# A split's random stream is keyed by (seed, this tag), not by the bare seed: generators seeded with the
# same integer (``np.random.default_rng(seed)``) would otherwise draw the very same numbers, and a split
# would sort rows by a generated attribute (seed 0 put every man of a generated cohort in one split).
_SPLIT_STREAM = 0x5E1177


def _layout(
    table: pd.DataFrame, seed: int, group_by: str | None, stratify: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The group code of each row and each group's place on the circle [0, 1): within each stratum
    the groups follow a seeded random order from a random start, each taking an arc as long as its
    share of the stratum's rows (see the module docstring)."""
    groups = _group_codes(table, group_by)
    first = np.unique(groups, return_index=True)[1]  # first row of each group (codes are 0..G-1 sorted)
    sizes = np.bincount(groups).astype(float)
    strata = _strata(table, stratify)[first]
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    order = np.lexsort((rng.random(len(first)), strata))  # groups by stratum, random within
    s_sorted, size_sorted = strata[order], sizes[order]
    cum = np.cumsum(size_sorted)
    start = np.r_[0.0, cum[:-1]]
    stratum_begin = np.r_[0.0, cum][np.searchsorted(s_sorted, s_sorted, side="left")]
    totals = np.bincount(s_sorted, weights=size_sorted)[s_sorted]
    offset = rng.random(int(strata.max()) + 1)[s_sorted]
    position = np.empty(len(first))
    position[order] = ((start - stratum_begin + size_sorted / 2) / totals + offset) % 1.0
    return groups, position


def split_cohort(
    cohort: Cohort | pd.DataFrame,
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
    group_by: str | None = "patient_id",
    stratify: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Split rows into named parts: ``{split: sorted row positions}``.

    ``fractions``: split name -> fraction of rows (sum 1; default 60/20/20 train/val/test).
    ``group_by``: the column whose values must not straddle two splits (``patient_id`` by default;
    when that column is absent, or ``None``, every row stands alone). ``stratify``: columns whose
    joint distribution each split should follow (default: the cohort's label; ``[]`` for none).
    Every row lands in exactly one split; the same ``seed`` gives the same split.
    """
    table = cohort.table if isinstance(cohort, Cohort) else cohort
    names, values = _check_fractions(fractions or DEFAULT_FRACTIONS)
    if stratify is None:
        stratify = [cohort.label] if isinstance(cohort, Cohort) else []
    if len(table) == 0:
        return {name: np.zeros(0, dtype=np.int64) for name in names}
    groups, position = _layout(table, seed, group_by, stratify)
    part = np.searchsorted(np.cumsum(values)[:-1], position, side="right")
    row_part = part[groups]
    return {name: np.flatnonzero(row_part == k) for k, name in enumerate(names)}


def cv_split(
    cohort: Cohort | pd.DataFrame,
    folds: int,
    fold: int,
    seed: int = 0,
    val_fraction: float = 0.25,
    group_by: str | None = "patient_id",
    stratify: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Fold ``fold`` of a stratified, patient-level ``folds``-fold cross-validation (repeat = ``seed``).

    The groups' places on the circle (as in :func:`split_cohort`) are cut into ``folds`` equal
    arcs: fold ``f`` tests the arc ``[f/k, (f+1)/k)``, so over the folds of one seed every row is
    tested exactly once. ``val_fraction`` of the remaining rows (the arc after the test arc) is
    the validation set, the rest trains. Returns ``{"train", "val", "test"}`` row positions.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise SpecError(f"cross-validation: fold {fold} of {folds} (expected folds >= 2, 0 <= fold < folds)")
    if not 0 <= val_fraction < 1:
        raise SpecError(f"cross-validation: val_fraction must be in [0, 1), got {val_fraction}")
    table = cohort.table if isinstance(cohort, Cohort) else cohort
    if stratify is None:
        stratify = [cohort.label] if isinstance(cohort, Cohort) else []
    if len(table) == 0:
        return {name: np.zeros(0, dtype=np.int64) for name in ("train", "val", "test")}
    groups, position = _layout(table, seed, group_by, stratify)
    scaled = position[groups] * folds
    test = np.minimum(np.floor(scaled), folds - 1) == fold  # integer arcs: tested exactly once
    after = (scaled - fold) % folds  # how far past the start of the test arc, in arcs
    val = ~test & (after < 1.0 + (folds - 1) * val_fraction)
    return {"train": np.flatnonzero(~test & ~val), "val": np.flatnonzero(val), "test": np.flatnonzero(test)}


__all__ = ["DEFAULT_FRACTIONS", "cv_split", "split_cohort"]
