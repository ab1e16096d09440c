"""Cohort: the validated table every data source produces, one row per image or embedding.

Columns: ``id`` (unique), label column(s) (integer class codes; names in
``class_names``), sensitive attributes (``fst`` 1-6, ``sex``, ``age``, ``race``,
``insurance``, ...), optional ``patient_id`` / ``lesion_id``, and where the pixels are:
a ``path`` column relative to ``image_root``, an in-memory ``images`` array (the
generator), or an ``embeddings`` matrix. Nothing downstream knows which source made it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairmed.data.groups import GroupSpec, is_missing
from fairmed.errors import DataError, first_rows
from fairmed.io import atomic_write

ID = "id"
PATH = "path"
GROUP_KEYS = ("patient_id", "lesion_id")
KNOWN_SEX = frozenset({"female", "male"})
_META_KEY = b"fairmed.cohort"


@dataclass
class Cohort:
    """A validated table of samples with labels, sensitive attributes and pixels/embeddings."""

    table: pd.DataFrame
    labels: list[str]
    attributes: list[str]
    class_names: dict[str, list[str]] = field(default_factory=dict)
    image_root: Path | None = None
    images: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    name: str = "cohort"

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            self.labels = [self.labels]
        self.labels = list(self.labels)
        self.attributes = list(self.attributes)
        if self.image_root is not None:
            self.image_root = Path(self.image_root)
        self.table = self.table.reset_index(drop=True)
        self._validate()

    # ------------------------------------------------------------ validation
    def _where(self) -> str:
        return self.meta.get("source_file") or self.name

    def _validate(self) -> None:
        t = self.table
        where = self._where()
        required = [ID, *self.labels, *self.attributes]
        missing = [c for c in required if c not in t.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing} (have: {', '.join(map(str, t.columns))})")
        if not self.labels:
            raise DataError(f"{where}: a cohort needs at least one label column")
        ids = t[ID]
        if ids.isna().any():
            raise DataError(f"{where}: column 'id' is empty at rows {first_rows(np.flatnonzero(ids.isna()))}")
        dup = ids.duplicated(keep=False)
        if dup.any():
            raise DataError(
                f"{where}: column 'id' has duplicate values {first_rows(pd.unique(ids[dup]))}"
                f" at rows {first_rows(np.flatnonzero(dup.to_numpy()))}"
            )
        for label in self.labels:
            self._validate_label(label)
        for attr in self.attributes:
            self._validate_attribute(attr)
        n = len(t)
        if self.images is not None and len(self.images) != n:
            raise DataError(f"{where}: {len(self.images)} images for {n} rows")
        if self.images is not None and (self.images.dtype != np.uint8 or self.images.ndim != 4):
            raise DataError(f"{where}: images must be a uint8 array (n, height, width, 3)")
        if self.embeddings is not None and (self.embeddings.ndim != 2 or len(self.embeddings) != n):
            raise DataError(f"{where}: embeddings must be a 2-D array with one row per sample ({n})")

    def _validate_label(self, label: str) -> None:
        col = self.table[label]
        where = self._where()
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna() | (num < 0) | (num != np.floor(num))
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())
            raise DataError(
                f"{where}: label column {label!r} must hold class codes 0..C-1;"
                f" bad values {first_rows(col.iloc[rows[:5]].tolist())} at rows {first_rows(rows)}"
            )
        self.table[label] = num.astype(np.int64)
        names = self.class_names.get(label)
        if names is not None and int(num.max()) >= len(names):
            raise DataError(
                f"{where}: label {label!r} has code {int(num.max())} but only {len(names)} class names"
            )

    def _validate_attribute(self, attr: str) -> None:
        col = self.table[attr]
        where = self._where()
        missing = is_missing(col)
        if attr == "fst":
            num = pd.to_numeric(col, errors="coerce")
            bad = ~missing & ~num.isin([1, 2, 3, 4, 5, 6]).to_numpy()
            expected = "Fitzpatrick types 1-6 (or -1/empty for missing)"
            if not bad.any():
                self.table[attr] = num.where(~missing).astype("Int64")
        elif attr == "sex":
            text = col.astype("string").str.strip().str.lower()
            text = text.replace({"f": "female", "m": "male", "woman": "female", "man": "male"})
            bad = ~missing & ~text.isin(KNOWN_SEX).fillna(False).to_numpy()
            expected = "'female' or 'male' (or empty for missing)"
            if not bad.any():
                self.table[attr] = text.where(~missing).astype(object).where(~missing, None)
        elif attr == "age":
            num = pd.to_numeric(col, errors="coerce")
            bad = ~missing & (num.isna() | (num < 0) | (num > 125)).to_numpy()
            expected = "ages in years 0-125 (or empty for missing)"
            if not bad.any():
                self.table[attr] = num.where(~missing).astype(float)
        else:
            return
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DataError(
                f"{where}: column {attr!r} expects {expected};"
                f" bad values {first_rows(col.iloc[rows[:5]].tolist())} at rows {first_rows(rows)}"
            )

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.table)

    @property
    def label(self) -> str:
        """The primary label column."""
        return self.labels[0]

    @property
    def ids(self) -> np.ndarray:
        return self.table[ID].to_numpy()

    def y(self, label: str | None = None) -> np.ndarray:
        return self.table[label or self.label].to_numpy(dtype=np.int64)

    def n_classes(self, label: str | None = None) -> int:
        label = label or self.label
        names = self.class_names.get(label)
        return len(names) if names else int(self.table[label].max()) + 1

    @property
    def pixel_source(self) -> str:
        if self.images is not None:
            return "memory"
        if self.embeddings is not None:
            return "embeddings"
        if PATH in self.table.columns:
            return "files"
        return "none"

    def groups(self, spec: GroupSpec | str) -> pd.Series:
        spec = GroupSpec.parse(spec) if isinstance(spec, str) else spec
        return spec.assign(self.table).groups

    # ------------------------------------------------------------- reshaping
    def subset(self, rows: np.ndarray | Sequence[int] | pd.Series) -> Cohort:
        """Rows by boolean mask or integer positions (duplicates allowed only via ``take``)."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if len(idx) != len(self):
                raise DataError(f"{self.name}: mask of length {len(idx)} for {len(self)} rows")
            idx = np.flatnonzero(idx)
        return self._take(idx.astype(np.int64), check_unique=True)

    def take(self, positions: np.ndarray, suffix_duplicates: bool = True) -> Cohort:
        """Rows by position, duplicates allowed (resampling); repeated ids get a ``#k`` suffix."""
        positions = np.asarray(positions, dtype=np.int64)
        out = self._take(positions, check_unique=False, rename=suffix_duplicates)
        return out

    def _take(self, idx: np.ndarray, check_unique: bool, rename: bool = False) -> Cohort:
        if check_unique and len(np.unique(idx)) != len(idx):
            raise DataError(f"{self.name}: subset positions repeat; use Cohort.take for resampling")
        table = self.table.iloc[idx].reset_index(drop=True)
        if rename:
            occurrence = table.groupby(ID).cumcount().to_numpy()
            if (occurrence > 0).any():
                table[ID] = np.where(
                    occurrence > 0, table[ID].astype(str) + "#" + occurrence.astype(str), table[ID]
                )
        return replace(
            self,
            table=table,
            images=None if self.images is None else self.images[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            meta=dict(self.meta),
        )

    def filter(self, mask: np.ndarray | pd.Series | None = None, **equals: Any) -> Cohort:
        """Keep rows where ``mask`` holds and every ``column=value`` (or ``column=[values]``) matches."""
        keep = np.ones(len(self), dtype=bool) if mask is None else np.array(mask, dtype=bool)  # a copy
        for column, value in equals.items():
            if column not in self.table.columns:
                raise DataError(f"{self.name}: no column {column!r} to filter on")
            values = value if isinstance(value, (list, tuple, set)) else [value]
            keep = keep & self.table[column].isin(values).to_numpy(dtype=bool)
        return self.subset(keep)

    def with_columns(self, **columns: Any) -> Cohort:
        table = self.table.copy()
        for k, v in columns.items():
            table[k] = v
        return replace(self, table=table, meta=dict(self.meta))

    @staticmethod
    def concat(cohorts: Iterable[Cohort], name: str | None = None) -> Cohort:
        """Stack cohorts with the same labels; attributes are the union, pixels must be of one kind."""
        items = list(cohorts)
        if not items:
            raise DataError("Cohort.concat: no cohorts given")
        first = items[0]
        for c in items[1:]:
            if c.labels != first.labels:
                raise DataError(f"Cohort.concat: labels differ ({first.labels} vs {c.labels})")
            if c.pixel_source != first.pixel_source:
                raise DataError(
                    f"Cohort.concat: pixel sources differ ({first.pixel_source} vs {c.pixel_source})"
                )
            if c.image_root != first.image_root and first.pixel_source == "files":
                raise DataError(f"Cohort.concat: image roots differ ({first.image_root} vs {c.image_root})")
        attributes = list(dict.fromkeys(a for c in items for a in c.attributes))
        images = np.concatenate([c.images for c in items]) if first.images is not None else None
        embeddings = np.concatenate([c.embeddings for c in items]) if first.embeddings is not None else None
        return Cohort(
            table=pd.concat([c.table for c in items], ignore_index=True),
            labels=first.labels,
            attributes=attributes,
            class_names=dict(first.class_names),
            image_root=first.image_root,
            images=images,
            embeddings=embeddings,
            meta=dict(first.meta),
            name=name or first.name,
        )

    # -------------------------------------------------------------- describe
    def describe(
        self, specs: Sequence[GroupSpec | str] | None = None, label: str | None = None
    ) -> pd.DataFrame:
        """Counts per group and label class: one row per (attribute, group), one column per class.

        Groups dropped as missing or excluded appear as their own rows so that
        nothing vanishes from the table. Two groupings of one attribute (``fst:12-56`` and
        ``fst:123-456``) are told apart by their short form, or by their groups.
        """
        label = label or self.label
        names = self.class_names.get(label)
        specs = (
            specs
            if specs is not None
            else [GroupSpec.categorical(a, missing="group") for a in self.attributes]
        )
        y = self.table[label]
        classes = names if names else [str(v) for v in sorted(y.unique())]
        rows = []
        parsed = [GroupSpec.parse(s) if isinstance(s, str) else s for s in specs]
        shared = {n for n in (p.name for p in parsed) if [p.name for p in parsed].count(n) > 1}
        for given, spec in zip(specs, parsed):
            if spec.attributes == ["age"] and spec.edges is None and spec.levels is None:
                spec = GroupSpec.age_bins((40, 60), missing="group")
            assignment = spec.assign(self.table)
            groups = assignment.groups.astype(object).where(assignment.kept, None)
            groups = groups.where(
                groups.notna(), np.where(assignment.missing_mask, "(missing)", "(excluded)")
            )
            tab = pd.crosstab(groups, y)
            categories = [str(g) for g in assignment.groups.cat.categories]
            name = spec.name
            if name in shared:
                name = given if isinstance(given, str) else f"{name} ({' / '.join(categories)})"
            for g in [o for o in [*categories, "(missing)", "(excluded)"] if o in tab.index]:
                counts = tab.loc[g]
                row = {"attribute": name, "group": g}
                for code, cname in enumerate(classes):
                    row[cname] = int(counts.get(code, 0)) if names else int(counts.get(int(cname), 0))
                row["n"] = int(counts.sum())
                rows.append(row)
        return pd.DataFrame(rows)

    # --------------------------------------------------------------- storage
    def save(self, path: str | Path) -> Path:
        """Write the table as Parquet (metadata in the schema); arrays beside it as ``.npy``."""
        import pyarrow as pa  # lazily: the audit reads GroupSpec from this package, not Parquet
        import pyarrow.parquet as pq

        path = Path(path)
        header = {
            "labels": self.labels,
            "attributes": self.attributes,
            "class_names": self.class_names,
            "image_root": str(self.image_root) if self.image_root else None,
            "meta": self.meta,
            "name": self.name,
            "images": self.images is not None,
            "embeddings": self.embeddings is not None,
        }
        for kind in ("images", "embeddings"):
            array = getattr(self, kind)
            if array is not None:
                atomic_write(path.with_suffix(f".{kind}.npy"), lambda p, a=array: _save_npy(p, a))
        table = pa.Table.from_pandas(self.table, preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[_META_KEY] = json.dumps(header, default=str).encode()
        table = table.replace_schema_metadata(metadata)
        return atomic_write(path, lambda p: pq.write_table(table, p))

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> Cohort:
        """Read a cohort written by :meth:`save` (arrays memory-mapped unless ``mmap=False``)."""
        import pyarrow.parquet as pq  # lazily, as in save

        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: cohort file not found")
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise DataError(f"{path}: not a fairmed cohort (no cohort metadata in the Parquet schema)")
        header = json.loads(raw)
        arrays = {}
        for kind in ("images", "embeddings"):
            if header.get(kind):
                arrays[kind] = np.load(path.with_suffix(f".{kind}.npy"), mmap_mode="r" if mmap else None)
        return cls(
            table=table.to_pandas(),
            labels=header["labels"],
            attributes=header["attributes"],
            class_names=header.get("class_names") or {},
            image_root=Path(header["image_root"]) if header.get("image_root") else None,
            meta=header.get("meta") or {},
            name=header.get("name", "cohort"),
            **arrays,
        )


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
