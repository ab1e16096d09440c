"""Cells of a cohort (label x attribute groups) and seeded, patient-level draws per cell.

The LP designer (:mod:`fairmed.design.composition`) works on a cell table: how many
samples each combination of label class and groups has. This module builds that table
from a :class:`~fairmed.data.cohort.Cohort`, and turns solved counts back into rows:

- :func:`cell_frame`: the cell of every row (NaN where a GroupSpec drops the row);
- :func:`cell_table`: the cartesian product of classes and groups with ``available``
  counts (0 for absent cells), minus excluded rows (the test set);
- :func:`draw_cells`: a seeded draw of a given count per cell, whole patients at a time
  (vectorized: one sort by cell and a random patient key, then a rank within the cell);
- :func:`draw_design`: test set (a fixed count per cell, e.g. balanced like F50M50) ->
  design rows from the rest -> validation patients carved out per cell. Rows of a test
  patient never reach training or validation, and a patient is never in both of those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairmed.data.cohort import GROUP_KEYS, Cohort
from fairmed.data.groups import GroupSpec, is_missing
from fairmed.design.composition import AVAILABLE, COUNT, SelectorValue, select_cells
from fairmed.errors import DataError, SpecError


def _specs(groups: Sequence[GroupSpec | str]) -> list[GroupSpec]:
    return [GroupSpec.parse(g) if isinstance(g, str) else g for g in groups]


def cell_frame(cohort: Cohort, groups: Sequence[GroupSpec | str], label: str | None = None) -> pd.DataFrame:
    """One row per cohort row: the label class name and one column per GroupSpec (NaN if dropped)."""
    label = label or cohort.label
    names = cohort.class_names.get(label)
    codes = cohort.y(label)
    if names:
        y = pd.Series(np.asarray(names, dtype=object)[codes])
    else:
        y = pd.Series(codes.astype(str), dtype=object)
    frame = {label: y.astype(object)}
    for spec in _specs(groups):
        if spec.name in frame:
            raise SpecError(f"cells: two dimensions are named {spec.name!r}")
        frame[spec.name] = spec.assign(cohort.table).groups.astype(object).reset_index(drop=True)
    return pd.DataFrame(frame)


def _levels(
    cohort: Cohort, groups: Sequence[GroupSpec | str], label: str, frame: pd.DataFrame
) -> list[list[str]]:
    names = cohort.class_names.get(label)
    levels = [list(names) if names else sorted(pd.unique(frame[label].dropna()), key=str)]
    for spec in _specs(groups):
        known = spec.group_names()
        if known is None:
            known = [str(c) for c in spec.assign(cohort.table).groups.cat.categories]
        levels.append([str(k) for k in known])
    return levels


def cell_table(
    cohort: Cohort,
    groups: Sequence[GroupSpec | str],
    label: str | None = None,
    exclude: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every (class, group, ...) combination with its ``available`` count, rows in ``exclude`` not counted.

    Cells the cohort does not have appear with 0 (a malignant-only export still lists the
    benign cells; give them a count with :func:`set_available`).
    """
    label = label or cohort.label
    frame = cell_frame(cohort, groups, label)
    keep = frame.notna().all(axis=1).to_numpy(copy=True)
    if exclude is not None:
        keep &= ~_as_mask(exclude, len(frame))
    dims = list(frame.columns)
    index = pd.MultiIndex.from_product(_levels(cohort, groups, label, frame), names=dims)
    counts = frame[keep].astype(str).value_counts().reindex(index, fill_value=0)
    table = counts.rename(AVAILABLE).reset_index()
    table[AVAILABLE] = table[AVAILABLE].astype(float)
    return table


def set_available(
    cells: pd.DataFrame, select: Mapping[str, SelectorValue], count: float, label: str | None = None
) -> pd.DataFrame:
    """A copy of the cell table with ``available = count`` in the selected cells (``inf``: plentiful)."""
    mask = select_cells(cells, select, label)
    out = cells.copy()
    out.loc[mask, AVAILABLE] = float(count)
    return out


def _as_mask(rows: np.ndarray, n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        return rows
    mask = np.zeros(n, dtype=bool)
    mask[rows.astype(np.int64)] = True
    return mask


def patient_codes(cohort: Cohort) -> np.ndarray:
    """Integer unit per row: its patient (else its lesion, else the row itself), so draws keep them whole."""
    n = len(cohort)
    unit = pd.Series(np.full(n, None, dtype=object))
    for key in reversed(GROUP_KEYS):  # patient_id wins over lesion_id
        if key in cohort.table.columns:
            col = cohort.table[key]
            ok = ~is_missing(col)
            unit = unit.where(~ok, key + ":" + col.astype(str))
    unit = unit.where(unit.notna(), "row:" + pd.Series(np.arange(n)).astype(str))
    return pd.factorize(unit)[0]


def _cell_codes(frame: pd.DataFrame, counts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row -> index of its cell in ``counts`` (-1 if none) and the quota per cell."""
    dims = list(frame.columns)
    missing = [d for d in dims if d not in counts.columns]
    if missing:
        raise SpecError(f"cells: the counts table lacks dimension(s) {missing}")
    keys = pd.MultiIndex.from_frame(counts[dims].astype(str))
    ok = frame.notna().all(axis=1).to_numpy()
    row_keys = pd.MultiIndex.from_frame(frame.astype(str))
    code = np.where(ok, keys.get_indexer(row_keys), -1)
    return code.astype(np.int64), counts[COUNT].to_numpy(dtype=np.int64)


def draw_cells(
    cell: np.ndarray, quota: np.ndarray, units: np.ndarray, seed: int | np.random.Generator, eligible=None
) -> np.ndarray:
    """Boolean mask: ``quota[c]`` rows of every cell ``c``, taking units (patients) in random order.

    Rows of one unit are adjacent in the order, so a unit is split only at a cell's quota
    boundary (the caller blocks the rest). Raises when a cell has fewer rows than its quota.
    """
    rng = np.random.default_rng(seed)
    n = len(cell)
    ok = cell >= 0 if eligible is None else (cell >= 0) & eligible
    unit_key = rng.random(int(units.max()) + 1 if n else 0)[units]
    order = np.lexsort((rng.random(n), unit_key, np.where(ok, cell, -1)))
    c = np.where(ok, cell, -1)[order]
    start = np.searchsorted(c, c, side="left")
    rank = np.arange(n) - start
    chosen = np.zeros(n, dtype=bool)
    chosen[order] = (c >= 0) & (rank < np.where(c >= 0, quota[np.maximum(c, 0)], 0))
    have = np.bincount(cell[chosen], minlength=len(quota))
    short = np.flatnonzero(have < quota)
    if short.size:
        k = short[0]
        raise DataError(f"cell #{k} needs {quota[k]} rows but only {have[k]} are available")
    return chosen


@dataclass(frozen=True)
class DesignDraw:
    """Row positions of the three splits, and the rows left out to keep patients whole."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    blocked: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}


def draw_test(
    frame: pd.DataFrame, test_counts: pd.DataFrame, units: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(test mask, blocked mask): ``test_counts`` rows per cell, whole patients; rows of test
    patients outside the test set are blocked from training and validation."""
    cell, quota = _cell_codes(frame, test_counts)
    test = draw_cells(cell, quota, units, np.random.default_rng([seed, 1]))
    blocked = np.isin(units, units[test]) & ~test
    return test, blocked


def draw_design(
    frame: pd.DataFrame,
    counts: pd.DataFrame,
    units: np.ndarray,
    seed: int,
    test: np.ndarray,
    blocked: np.ndarray,
    val_fraction: float = 0.2,
) -> DesignDraw:
    """Draw ``counts`` rows per cell outside test/blocked, then move whole patients to validation.

    Validation patients are chosen per cell (a patient's cell is the cell of its first drawn
    row): ``round(val_fraction * patients)`` of them, so both classes and all groups appear.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise SpecError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cell, quota = _cell_codes(frame, counts)
    rng = np.random.default_rng([seed, 2])
    design = draw_cells(cell, quota, units, rng, eligible=~test & ~blocked)
    rows = np.flatnonzero(design)
    u_rows = units[rows]
    first = pd.Series(cell[rows]).groupby(u_rows).first()  # unit -> its cell
    unit_ids = first.index.to_numpy()
    unit_cell = first.to_numpy()
    key = rng.random(len(unit_ids))
    order = np.lexsort((key, unit_cell))
    c = unit_cell[order]
    rank = np.arange(len(c)) - np.searchsorted(c, c, side="left")
    per_cell = np.bincount(unit_cell, minlength=len(quota))
    n_val = np.floor(val_fraction * per_cell + 0.5).astype(np.int64)
    val_units = unit_ids[order][rank < n_val[c]]
    in_val = np.isin(u_rows, val_units)
    return DesignDraw(
        train=rows[~in_val], val=rows[in_val], test=np.flatnonzero(test), blocked=np.flatnonzero(blocked)
    )


__all__ = [
    "DesignDraw",
    "cell_frame",
    "cell_table",
    "draw_cells",
    "draw_design",
    "draw_test",
    "patient_codes",
    "set_available",
]
