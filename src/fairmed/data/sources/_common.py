"""Shared checks of the table readers: every bad input is one line naming file, column and row."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fairmed.data.cohort import Cohort
from fairmed.data.groups import is_missing
from fairmed.data.images import check_relative_paths
from fairmed.errors import DataError
from fairmed.io import read_table

SEX_WORDS = {"female": "female", "f": "female", "woman": "female", "male": "male", "m": "male", "man": "male"}


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV/Parquet table with one-line errors; empty files are an error too."""
    df = read_table(path)
    if df.empty:
        raise DataError(f"{path}: the table has no rows")
    return df


def require(df: pd.DataFrame, columns: Sequence[str], file: Path | str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns))
        raise DataError(f"{file}: missing column {missing[0]!r} (have: {have})")


def fail(file: Path | str, column: str, bad: np.ndarray, values: pd.Series, expected: str) -> DataError:
    """The error for rows where ``bad`` holds: first row, its value, how many more."""
    rows = np.flatnonzero(bad)
    r = int(rows[0])
    more = f" ({len(rows)} bad rows)" if len(rows) > 1 else ""
    value = values.iloc[r]
    value = value.item() if isinstance(value, np.generic) else value  # -5.0, not np.float64(-5.0)
    return DataError(f"{file}: column {column!r} row {r}: bad value {value!r}, expected {expected}{more}")


def check_unique(df: pd.DataFrame, column: str, file: Path | str) -> None:
    col = df[column]
    empty = (col.isna() | (col.astype("string").str.strip() == "")).fillna(True).to_numpy(dtype=bool)
    if empty.any():
        raise DataError(f"{file}: column {column!r} row {int(np.flatnonzero(empty)[0])}: empty id")
    dup = col.duplicated(keep="first").to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((col == col.iloc[r]).to_numpy())[0])
        raise DataError(
            f"{file}: column {column!r} row {r}: duplicate id {col.iloc[r]!r} (first at row {first};"
            f" {int(dup.sum())} duplicate(s))"
        )


def parse_fst(values: pd.Series, file: Path | str, column: str) -> pd.Series:
    """Fitzpatrick type 1-6; -1, empty or 'unknown' = missing (NA)."""
    missing = is_missing(values)
    num = pd.to_numeric(values, errors="coerce")
    bad = ~missing & ~num.isin([1, 2, 3, 4, 5, 6]).to_numpy()
    if bad.any():
        raise fail(file, column, bad, values, "a Fitzpatrick type 1-6 (or -1/empty for missing)")
    return num.where(~missing).astype("Int64")


def parse_sex(values: pd.Series, file: Path | str, column: str) -> pd.Series:
    missing = is_missing(values)
    text = values.astype("string").str.strip().str.lower().map(SEX_WORDS)
    bad = ~missing & text.isna().to_numpy()
    if bad.any():
        raise fail(file, column, bad, values, "'female'/'male' (or F/M, empty/unknown for missing)")
    return pd.Series(np.where(missing, None, text.astype(object)), index=values.index, dtype=object)


def parse_age(values: pd.Series, file: Path | str, column: str) -> pd.Series:
    missing = is_missing(values)
    num = pd.to_numeric(values, errors="coerce")
    bad = ~missing & (num.isna() | (num < 0) | (num > 125)).to_numpy()
    if bad.any():
        raise fail(file, column, bad, values, "an age in years 0-125 (or empty)")
    return num.where(~missing).astype(float)


def encode_labels(
    values: pd.Series, file: Path | str, column: str, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Text labels -> codes in the order of ``classes`` (default: sorted distinct values)."""
    text = values.astype("string").str.strip()
    missing = text.isna() | (text == "")
    if missing.any():
        raise fail(file, column, missing.to_numpy(), values, "a label (empty labels are not allowed)")
    if classes is None:
        classes = sorted(pd.unique(text).tolist())
    lookup = {str(c).strip().lower(): k for k, c in enumerate(classes)}
    codes = text.str.lower().map(lookup)
    bad = codes.isna().to_numpy()
    if bad.any():
        raise fail(file, column, bad, values, f"one of {list(classes)}")
    return codes.to_numpy(dtype=np.int64), [str(c) for c in classes]


def existing(root: Path, rel_paths: pd.Series) -> np.ndarray:
    """Which ``root/path`` files exist (one stat per file)."""
    base = str(root)
    return np.fromiter(
        (os.path.isfile(os.path.join(base, p)) for p in rel_paths.astype(str)), bool, len(rel_paths)
    )


def check_images(
    table: pd.DataFrame,
    root: Path,
    file: Path | str,
    id_column: str,
    path_column: str = "path",
    on_missing: str = "error",
) -> tuple[pd.DataFrame, int]:
    """Refuse paths outside ``root``; a missing image is an error or is dropped (and counted)."""
    check_relative_paths(table[path_column], str(file), path_column)
    if not root.is_dir():
        raise DataError(f"{file}: image folder {root} not found")
    found = existing(root, table[path_column])
    return keep_found(
        table,
        found,
        on_missing,
        lambda r: (
            f"{file}: column {path_column!r} row {r}: image {table[path_column].iloc[r]!r} of id"
            f" {table[id_column].iloc[r]!r} not found under {root.resolve()}"
        ),
    )


def keep_found(
    table: pd.DataFrame, found: np.ndarray, on_missing: str, missing: Callable[[int], str]
) -> tuple[pd.DataFrame, int]:
    """``table`` when every row's image was found; else its found rows and the count dropped
    (``on_missing="drop"``), or one error line: ``missing(first absent row)`` and the count."""
    if found.all():
        return table, 0
    if on_missing == "drop":
        return table[found].reset_index(drop=True), int((~found).sum())
    r = int(np.flatnonzero(~found)[0])
    raise DataError(f"{missing(r)} ({int((~found).sum())} missing; set missing_images: drop to skip them)")


def resolve(path: Path | None, base_dir: Path | None) -> Path | None:
    """Spec paths are relative to the spec file's folder when one is given."""
    if path is None:
        return None
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() or base_dir is None else base_dir / path


def find_files(root: Path, names: pd.Series, file: Path | str, column: str) -> pd.Series:
    """Each file name's path relative to ``root``, wherever it lies below ``root`` (None if absent).

    Published archives split their images into parts (``imgs_part_1..3``, ``images_001..012``);
    one walk of the tree finds them. Symlinked folders below ``root`` are followed (once each);
    a name found in two folders is an error naming both.
    """
    if not root.is_dir():
        raise DataError(f"{file}: image folder {root} not found")
    where: dict[str, str] = {}
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop or a folder linked twice
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        rel = os.path.relpath(folder, root)
        for name in files:
            path = name if rel == "." else f"{rel}/{name}"
            if name in where:
                raise DataError(
                    f"{file}: column {column!r}: image {name!r} is in two folders: {where[name]}, {path}"
                )
            where[name] = path
    return names.astype(str).map(where)


def place_images(
    table: pd.DataFrame, root: Path, file: Path | str, column: str, names: pd.Series, on_missing: str
) -> tuple[pd.DataFrame, int]:
    """``table`` with a ``path`` column from :func:`find_files` (``names``: the file name of each row,
    from CSV column ``column``); a row whose image is absent is an error naming it, or is dropped
    (and counted) with ``on_missing="drop"``."""
    table = table.assign(path=find_files(root, names, file, column).to_numpy())
    found = table["path"].notna().to_numpy()
    return keep_found(
        table,
        found,
        on_missing,
        lambda r: f"{file}: column {column!r} row {r}: image {names.iloc[r]!r} not found under {root}",
    )


def map_categories(values: pd.Series, rules: Sequence[tuple[str, str]], other: str = "Other") -> pd.Series:
    """Free-text categories (e.g. race) -> readable group names.

    ``rules``: (substring, name) pairs tried in order, case-insensitive; a value that no rule
    matches is ``other``; missing values (:func:`is_missing`, plus 'unable to obtain', 'patient
    refused', 'declined') stay missing."""
    text = values.astype("string").str.strip().str.lower()
    refused = text.str.contains("unable to obtain|refused|declined", regex=True).fillna(False).to_numpy(bool)
    missing = is_missing(values) | refused
    out = np.full(len(values), other, dtype=object)
    decided = np.zeros(len(values), dtype=bool)
    for needle, name in rules:
        hit = ~decided & text.str.contains(needle.lower(), regex=False).fillna(False).to_numpy(bool)
        out[hit] = name
        decided |= hit
    out[missing] = None
    return pd.Series(out, index=values.index, dtype=object)


def cxr_finding(
    values: pd.Series, uncertain: str, file: Path | str, column: str
) -> tuple[np.ndarray, np.ndarray]:
    """A CheXpert-labeller column (1 positive, 0 negative, -1 uncertain, empty not mentioned) as
    (label 0/1, keep mask): empty = 0; -1 = 0 (``uncertain="zeros"``), 1 (``"ones"``) or the row is
    dropped (``"drop"``)."""
    num = pd.to_numeric(values, errors="coerce")
    bad = (values.notna() & ~num.isin([1, 0, -1])).to_numpy(bool)
    if bad.any():
        raise fail(file, column, bad, values, "1, 0, -1 (uncertain) or empty")
    num = num.fillna(0).to_numpy()
    unsure = num == -1
    label = np.where(unsure, 1 if uncertain == "ones" else 0, num).astype(np.int64)
    keep = ~unsure if uncertain == "drop" else np.ones(len(num), dtype=bool)
    return label, keep


def finding_names(label: str) -> list[str]:
    """Class names of a binary chest X-ray finding: 'No Finding' -> [finding, no finding]."""
    if label.strip().lower() in ("no finding", "normal"):
        return ["finding", "no finding"]
    return [f"no {label}", label]


def finding_cohort(
    table: pd.DataFrame,
    *,
    name: str,
    label: str,
    attributes: Sequence[str],
    image_root: Path | None,
    source_file: Path | str,
    **meta: object,
) -> Cohort:
    """A chest X-ray cohort of one binary finding (label ``finding``, classes from ``label``), with
    the source's name, file, label column and its drop counts (``meta``) kept in ``Cohort.meta``."""
    return Cohort(
        table=table,
        labels=["finding"],
        attributes=list(attributes),
        class_names={"finding": finding_names(label)},
        image_root=image_root,
        meta={"source": name, "source_file": str(source_file), "label_column": label, **meta},
        name=name,
    )
