"""PAPILA (Kovalyk et al. 2022): fundus photographs of both eyes with glaucoma diagnosis, sex and age.

Expected layout (as the figshare release ships it)::

    ClinicalData/patient_data_od.xlsx   right eyes (OD); ``.csv`` exports are read too
    ClinicalData/patient_data_os.xlsx   left eyes (OS); columns ID ("#002"), Age, Gender (0 male,
                                        1 female), Diagnosis (0 healthy, 1 glaucoma, 2 suspect),
                                        refraction and the other clinical columns (a title row
                                        above the header is skipped)
    FundusImages/RET002OD.jpg           one image per patient and eye: RET<ID digits><OD|OS>.jpg

``label``: ``glaucoma`` (1) vs healthy (0); suspects are dropped (counted as
``dropped_suspect``) unless ``suspect`` says ``positive`` or ``negative``. Attributes ``sex``
and ``age``; both eyes of a patient share ``patient_id`` (the ID), so splits keep them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import check_images, fail, parse_age, read_csv, require
from fairmed.errors import DataError

COLUMNS = ["ID", "Age", "Gender", "Diagnosis"]


class PapilaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["papila"] = "papila"
    od: Path
    os: Path
    images: Path | None = None
    suspect: Literal["drop", "positive", "negative"] = "drop"
    missing_images: Literal["error", "drop"] = "error"


def _read(path: Path) -> pd.DataFrame:
    """The clinical table; when its first row is a title, the header is the row below."""
    df = read_csv(path)
    if not set(COLUMNS) <= set(map(str, df.columns)) and len(df) > 1:
        first = df.iloc[0].astype(str).str.strip().tolist()
        if set(COLUMNS) <= set(first):
            df = df.iloc[1:].set_axis(first, axis=1).reset_index(drop=True)
    require(df, COLUMNS, path)
    return df


def _eye(path: Path, eye: str) -> pd.DataFrame:
    df = _read(path)
    digits = df["ID"].astype("string").str.strip().str.lstrip("#")
    bad = ~digits.str.fullmatch(r"\d+").fillna(False).to_numpy(bool)
    if bad.any():
        raise fail(path, "ID", bad, df["ID"], "a patient id such as #002")
    gender = pd.to_numeric(df["Gender"], errors="coerce")
    bad = ~gender.isin([0, 1]).to_numpy(bool) & df["Gender"].notna().to_numpy(bool)
    if bad.any():
        raise fail(path, "Gender", bad, df["Gender"], "0 (male) or 1 (female)")
    diagnosis = pd.to_numeric(df["Diagnosis"], errors="coerce")
    bad = ~diagnosis.isin([0, 1, 2]).to_numpy(bool)
    if bad.any():
        raise fail(path, "Diagnosis", bad, df["Diagnosis"], "0 (healthy), 1 (glaucoma) or 2 (suspect)")
    return pd.DataFrame(
        {
            "id": "RET" + digits + eye,
            "patient_id": digits.astype(str),
            "eye": eye,
            "path": ("RET" + digits + eye + ".jpg").astype(str),
            "diagnosis": diagnosis.to_numpy(np.int64),
            "sex": np.where(gender.isna(), None, np.where(gender == 1, "female", "male")),
            "age": parse_age(df["Age"], path, "Age"),
        }
    )


def load(spec: PapilaSpec) -> Cohort:
    table = pd.concat([_eye(spec.od, "OD"), _eye(spec.os, "OS")], ignore_index=True)
    suspect = table["diagnosis"].to_numpy() == 2
    if spec.suspect == "drop":
        table = table[~suspect].reset_index(drop=True)
    table["glaucoma"] = np.where(table["diagnosis"] == 2, int(spec.suspect == "positive"), table["diagnosis"])
    if table["id"].duplicated().any():
        raise DataError(
            f"{spec.od}, {spec.os}: image id {table['id'][table['id'].duplicated()].iloc[0]!r} twice"
        )
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(table, spec.images, spec.od, "id", on_missing=spec.missing_images)
    return Cohort(
        table=table,
        labels=["glaucoma"],
        attributes=["sex", "age"],
        class_names={"glaucoma": ["healthy", "glaucoma"]},
        image_root=spec.images,
        meta={
            "source": "papila",
            "source_file": f"{spec.od}, {spec.os}",
            "dropped_missing_images": dropped,
            "dropped_suspect": int(suspect.sum()) if spec.suspect == "drop" else 0,
        },
        name="papila",
    )
