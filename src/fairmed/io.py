"""Atomic file writes and table reading: nothing half-written is ever left behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from fairmed.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    The result gets the mode any other tool would give it (0666 less the umask), not the
    temporary file's private 0600: a report copied to a shared folder stays readable.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable(path: str | os.PathLike, folder: bool = False, option: str = "") -> Path:
    """Fail before any work when ``path`` (a file, or a folder when ``folder``) cannot be written.

    Creates the missing parent folders (the output goes there anyway) and probes them with a
    temporary file; a path naming an existing folder (file wanted), an existing file (folder
    wanted) or lying below a file is refused with one line.
    """
    target = Path(path)
    what = f"{option} {target}" if option else str(target)
    if folder and target.exists() and not target.is_dir():
        raise DataError(f"{what}: is a file, expected a folder for the output")
    if not folder and target.is_dir():
        raise DataError(f"{what}: is a folder, expected a file name for the output")
    where = target if folder else target.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        below = next((p for p in where.parents if p.exists() and not p.is_dir()), None)
        if below is not None or (where.exists() and not where.is_dir()):
            reason = f"{below or where} is a file, not a folder"
        raise DataError(f"{what}: cannot write there ({reason})") from None
    return target


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_json(path: str | os.PathLike, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


TABLE_SUFFIXES = (".parquet", ".csv", ".json")


def check_table_suffix(path: str | os.PathLike) -> str:
    """The suffix of a table to write, or a one-line DataError before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"{path}: unsupported table format {suffix!r} (expected .parquet, .csv or .json)")
    return suffix


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table atomically as Parquet, CSV or JSON, chosen by the file suffix."""
    suffix = check_table_suffix(path)
    if suffix == ".parquet":
        return atomic_write(path, lambda p: df.to_parquet(p, index=False))
    if suffix == ".csv":
        return atomic_write(path, lambda p: df.to_csv(p, index=False))
    return atomic_write(path, lambda p: df.to_json(p, orient="records", indent=2))


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV (also ``.csv.gz``), TSV, Parquet or Excel table with a one-line error when it cannot
    be read (Excel needs the optional ``openpyxl``)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    suffix = p.suffix.lower()
    if suffix == ".gz" and p.name.lower().endswith((".csv.gz", ".tsv.gz")):
        suffix = p.name.lower()[-7:-3]
    try:
        if suffix == ".xlsx":
            try:
                return pd.read_excel(p)
            except ImportError:
                raise DataError(f"{p}: reading Excel files needs openpyxl (pip install openpyxl)") from None
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in {".csv", ".txt"}:
            return pd.read_csv(p, low_memory=False)
        if suffix == ".tsv":
            return pd.read_csv(p, sep="\t", low_memory=False)  # .tsv and .tsv.gz
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{p}: cannot read table: {first}") from exc
    raise DataError(f"{p}: unsupported table format {suffix!r} (expected .csv, .tsv, .parquet or .xlsx)")
