"""HAM10000 (Tschandl et al. 2018): dermoscopic images of seven diagnoses.

Expected layout::

    HAM10000_metadata.csv            lesion_id, image_id, dx, dx_type, age, sex, localization
    HAM10000_images_part_1/<image_id>.jpg
    HAM10000_images_part_2/<image_id>.jpg   (``images`` lists one or more folders; each image
                                             is looked up in all of them)

``label``: ``dx`` (akiec, bcc, bkl, df, mel, nv, vasc) or ``malignant`` (mel, bcc, akiec =
1). ``sex`` "unknown" and an empty ``age`` are missing values; ``lesion_id`` is kept so that
splits can keep all images of a lesion together.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import check_unique, encode_labels, parse_age, parse_sex, read_csv, require
from fairmed.errors import DataError

DX = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
MALIGNANT = ["mel", "bcc", "akiec"]


class Ham10000Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ham10000"] = "ham10000"
    metadata: Path
    images: list[Path] = []
    label: Literal["dx", "malignant"] = "dx"
    missing_images: Literal["error", "drop"] = "error"

    @field_validator("images", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, (str, Path)) else v


def load(spec: Ham10000Spec) -> Cohort:
    df = read_csv(spec.metadata)
    require(df, ["lesion_id", "image_id", "dx", "age", "sex"], spec.metadata)
    check_unique(df, "image_id", spec.metadata)
    table = df.rename(columns={"image_id": "id"})
    codes, _ = encode_labels(df["dx"], spec.metadata, "dx", DX)
    table["dx"] = np.asarray(DX, dtype=object)[codes]
    if spec.label == "dx":
        table["diagnosis"] = codes
        label, names = "diagnosis", DX
    else:
        table["malignant"] = np.isin(table["dx"], MALIGNANT).astype(np.int64)
        label, names = "malignant", ["benign", "malignant"]
    table["sex"] = parse_sex(df["sex"], spec.metadata, "sex")
    table["age"] = parse_age(df["age"], spec.metadata, "age")
    root, dropped = None, 0
    if spec.images:
        for folder in spec.images:
            if not folder.is_dir():
                raise DataError(f"{spec.metadata}: image folder {folder} not found")
        root = Path(os.path.commonpath([str(f.resolve()) for f in spec.images]))
        names_by_folder = [(f, set(os.listdir(f))) for f in spec.images]
        where = pd.Series(None, index=table.index, dtype=object)
        files = table["id"].astype(str) + ".jpg"
        for folder, present in reversed(names_by_folder):  # the first folder listed wins
            rel = os.path.relpath(folder.resolve(), root)
            prefix = "" if rel == "." else rel + "/"
            hit = files.isin(present).to_numpy()
            where[hit] = (prefix + files[hit]).to_numpy()
        found = where.notna().to_numpy()
        if not found.all():
            if spec.missing_images == "error":
                r = int(np.flatnonzero(~found)[0])
                raise DataError(
                    f"{spec.metadata}: column 'image_id' row {r}: image {files.iloc[r]!r} not found in"
                    f" {', '.join(map(str, spec.images))} ({int((~found).sum())} missing;"
                    " set missing_images: drop to skip them)"
                )
            dropped = int((~found).sum())
        table["path"] = where
        table = table[found].reset_index(drop=True)
    return Cohort(
        table=table,
        labels=[label],
        attributes=["sex", "age"],
        class_names={label: names},
        image_root=root,
        meta={"source": "ham10000", "source_file": str(spec.metadata), "dropped_missing_images": dropped},
        name="ham10000",
    )
