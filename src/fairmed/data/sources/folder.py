"""A generic image folder described by a CSV: the user names the id, label, attribute and path columns.

Expected layout::

    metadata.csv            one row per image; columns named in the spec (defaults: id, path)
    <root>/<path>           the image of each row, ``path`` relative to ``root`` (default: the
                            CSV's folder); absolute paths and paths climbing out of the root
                            are refused

Labels may be integer codes 0..C-1 or text; text is coded in the order of
``class_names`` (default: sorted). ``attributes`` are kept as the sensitive attributes
(``fst``, ``sex`` and ``age`` are checked: 1-6, female/male, years); ``keep`` lists
further columns to carry along (``patient_id`` and ``lesion_id`` are kept when present).
``fairmed data synth`` writes exactly this layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import (
    check_images,
    check_unique,
    encode_labels,
    fail,
    parse_age,
    parse_fst,
    parse_sex,
    read_csv,
    require,
)

PARSERS = {"fst": parse_fst, "sex": parse_sex, "age": parse_age}


class FolderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder"] = "folder"
    csv: Path
    root: Path | None = None
    id_column: str = "id"
    path_column: str = "path"
    labels: list[str]
    attributes: list[str] = []
    class_names: dict[str, list[str]] = {}
    keep: list[str] = []
    missing_images: Literal["error", "drop"] = "error"

    @field_validator("labels", "attributes", "keep", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v


def _label(
    values: pd.Series, file: Path, column: str, names: list[str] | None
) -> tuple[np.ndarray, list[str]]:
    num = pd.to_numeric(values, errors="coerce")
    if num.notna().all():
        bad = ((num < 0) | (num != np.floor(num))).to_numpy()
        if names is not None:
            bad |= (num >= len(names)).to_numpy()
        if bad.any():
            raise fail(file, column, bad, values, "a class code 0..C-1 or a class name")
        codes = num.to_numpy(dtype=np.int64)
        return codes, names or [str(k) for k in range(int(codes.max()) + 1)]
    return encode_labels(values, file, column, names)


def load(spec: FolderSpec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, [spec.id_column, spec.path_column, *spec.labels, *spec.attributes, *spec.keep], spec.csv)
    check_unique(df, spec.id_column, spec.csv)
    table = pd.DataFrame({"id": df[spec.id_column].astype(str), "path": df[spec.path_column].astype(str)})
    class_names = {}
    for column in spec.labels:
        table[column], class_names[column] = _label(
            df[column], spec.csv, column, spec.class_names.get(column)
        )
    for column in spec.attributes:
        parser = PARSERS.get(column)
        table[column] = parser(df[column], spec.csv, column) if parser else df[column]
    extra = [c for c in ("patient_id", "lesion_id") if c in df.columns] + spec.keep
    for column in dict.fromkeys(extra):
        if column not in table.columns:
            table[column] = df[column].to_numpy()
    root = spec.root if spec.root is not None else spec.csv.parent
    table, dropped = check_images(table, root, spec.csv, "id", on_missing=spec.missing_images)
    return Cohort(
        table=table,
        labels=spec.labels,
        attributes=spec.attributes,
        class_names=class_names,
        image_root=root,
        meta={"source": "folder", "source_file": str(spec.csv), "dropped_missing_images": dropped},
        name=spec.csv.stem,
    )
