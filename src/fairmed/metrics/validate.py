"""Input checks of the audit: each problem becomes one line naming the column and rows.

Raised as :class:`fairmed.errors.InputError` (the CLI prints it and exits 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from fairmed.errors import FairmedError, InputError, first_rows


def _rows(values, bad: np.ndarray) -> str:
    index = values.index if isinstance(values, pd.Series) else np.arange(len(bad))
    return first_rows(np.asarray(index)[bad])


def require_rows(frame: pd.DataFrame) -> None:
    if len(frame) == 0:
        raise InputError("the table has no rows")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str = "predictions") -> None:
    """One line naming the first missing column and the columns that are there."""
    have = list(map(str, frame.columns))
    for col in columns:
        if col not in frame.columns:
            raise InputError(f"{what}: column {col!r} not found (have: {', '.join(have)})")


@contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Prefix a user error raised inside with the file it is about (postprocess reads two)."""
    try:
        yield
    except FairmedError as exc:
        text = str(exc)
        if text.startswith(f"{path}:"):
            raise
        raise type(exc)(f"{path}: {text}") from None


def check_scalar_cells(frame: pd.DataFrame, columns: Iterable[str]) -> None:
    """Refuse list/struct cells (Parquet) and NUL bytes: signs of a wrong or corrupt table."""
    for col in dict.fromkeys(columns):
        if col not in frame.columns or not (
            pd.api.types.is_object_dtype(frame[col]) or pd.api.types.is_string_dtype(frame[col])
        ):
            continue
        values = frame[col]
        nested = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray))).to_numpy(bool)
        if nested.any():
            kind = type(values[nested].iloc[0]).__name__
            raise InputError(
                f"column {col!r}: {kind} values at rows {_rows(values, nested)} "
                "(expected one number or text per cell, not a list or struct)"
            )
        nul = values.map(lambda v: isinstance(v, (str, bytes)) and "\x00" in str(v)).to_numpy(bool)
        if nul.any():
            raise InputError(
                f"column {col!r}: NUL bytes at rows {_rows(values, nul)} (a binary or corrupt file?)"
            )


def dropped_line(name: str, assignment, key: np.ndarray, distinct: pd.DataFrame) -> str:
    """'sex: 3 of 40 rows dropped (3 with a missing value)'; "" when every row has a group.

    ``assignment``: a GroupAssignment of the ``distinct`` attribute rows; ``key``: each input row's
    position in ``distinct`` (``np.arange(n)`` when the spec was applied to every row).
    """
    missing = int(assignment.missing_mask[key].sum()) if assignment.dropped_missing else 0
    outside = int(assignment.excluded_mask[key].sum())
    if not missing and not outside:
        return ""
    reasons = [f"{missing} with a missing value"] if missing else []
    if outside:
        examples = distinct[assignment.excluded_mask].drop_duplicates().head(3)
        shown = ", ".join("/".join(map(str, row)) for row in examples.itertuples(index=False))
        reasons.append(f"{outside} with a value in no group, e.g. {shown}")
    return f"{name}: {missing + outside} of {len(key)} rows dropped ({'; '.join(reasons)})"


def binary_predictions(
    frame: pd.DataFrame, label: str, score: str, attributes: Iterable[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0/1) and probability scores of a binary Predictions table, checked as the audit checks them."""
    require_rows(frame)
    require_columns(frame, [label, score, *attributes])
    check_scalar_cells(frame, [label, score, *attributes])
    return as_binary_labels(frame[label], label), as_probabilities(frame[score], score)


def as_binary_labels(values, name: str = "y_true") -> np.ndarray:
    """0/1 labels (bool, ints, floats or the strings '0'/'1') as int64; else one clear line."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if series.dtype == bool:
        return series.to_numpy(dtype=np.int64)
    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(num)
    if missing.any():
        raw_na = series.isna().to_numpy()
        what = "missing" if raw_na[missing].all() else "non-numeric"
        raise InputError(
            f"column {name!r}: {what} labels at rows {_rows(series, missing)} (expected binary labels 0/1)"
        )
    bad = (num != 0) & (num != 1)
    if bad.any():
        found = ", ".join(map(str, pd.unique(num[bad])[:5]))
        raise InputError(
            f"column {name!r}: labels must be binary 0/1 for binary metrics; found {found} "
            f"at rows {_rows(series, bad)}"
        )
    return num.astype(np.int64)


def as_class_codes(values, n_classes: int | None, name: str = "y_true") -> np.ndarray:
    """Integer class codes 0..C-1 for multi-class metrics."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(num) | (num != np.round(num)) | (num < 0)
    if n_classes is not None:
        bad |= num >= n_classes
    if bad.any():
        expected = f"0..{n_classes - 1}" if n_classes else "0, 1, 2, ..."
        raise InputError(
            f"column {name!r}: expected integer class codes {expected}; bad values at rows {_rows(series, bad)}"
        )
    return num.astype(np.int64)


def as_probabilities(values, name: str = "y_score", bounded: bool = True) -> np.ndarray:
    """Finite scores (in [0, 1] when ``bounded``) as float64; else one clear line."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    num = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(num)
    if bad.any():
        raise InputError(
            f"column {name!r}: {int(bad.sum())} NaN, infinite or non-numeric values at rows "
            f"{_rows(series, bad)} (expected finite scores)"
        )
    if bounded:
        out = (num < 0) | (num > 1)
        if out.any():
            raise InputError(
                f"column {name!r}: scores outside [0, 1] at rows {_rows(series, out)} "
                f"(e.g. {num[out][0]:g}); expected probabilities (apply a sigmoid/softmax first)"
            )
    return num


def as_codes(groups, n: int) -> tuple[np.ndarray, list[str]]:
    """Group labels -> codes 0..G-1 of the groups present (-1 for missing) and their names.

    A categorical keeps its category order (empty categories are left out); other labels
    sort naturally (numbers by value, then text).
    """
    if groups is None:
        return np.zeros(n, dtype=np.int64), ["overall"]
    series = groups if isinstance(groups, pd.Series) else pd.Series(np.asarray(groups, dtype=object))
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy(dtype=np.int64)
        cats = [str(c) for c in series.cat.categories]
    else:
        raw_codes, uniques = pd.factorize(series.astype("string"), use_na_sentinel=True)
        names = [str(u) for u in uniques]
        ranked = sorted(range(len(names)), key=lambda i: _natural_key(names[i]))
        to_sorted = np.empty(len(names) + 1, dtype=np.int64)
        to_sorted[ranked] = np.arange(len(names))
        to_sorted[-1] = -1
        codes = to_sorted[np.asarray(raw_codes, dtype=np.int64)]
        cats = [names[i] for i in ranked]
    counts = np.bincount(codes[codes >= 0], minlength=len(cats))
    present = np.flatnonzero(counts > 0)
    remap = np.full(len(cats) + 1, -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    return remap[codes], [cats[i] for i in present]


def _natural_key(value: str):
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def check_lengths(**arrays) -> None:
    """All given arrays (None skipped) have one length; else one line naming them."""
    sizes = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise InputError(f"mismatched lengths: {shown} (every array needs one value per sample)")
