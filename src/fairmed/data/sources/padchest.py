"""PadChest (Bustos et al. 2020): 16-bit chest radiographs from Hospital San Juan with sex and birth year.

Expected layout (as BIMCV ships it; ``.csv`` or ``.csv.gz``)::

    PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv
                            ImageID, ImageDir, StudyDate_DICOM (YYYYMMDD), StudyID, PatientID,
                            PatientBirth (year), PatientSex_DICOM (M/F), ViewPosition_DICOM,
                            Projection (PA, AP, AP_horizontal, L, COSTAL, ...), ..., Labels
                            (a list such as ['normal'] or ['pneumonia', 'COPD signs']), ...
    <ImageDir>/<ImageID>    the 16-bit PNGs, one folder per zip (0 ... 54) below ``images``

``label``: "normal" (default; 1 = the report found nothing) or any label of the Labels lists
(1 = listed); rows without labels are dropped (counted as ``dropped_unlabelled``).
``projections``: the frontal ones by default (PA, AP, AP_horizontal). ``age``: year of
StudyDate_DICOM minus PatientBirth. ``sex``: M/F (anything else, e.g. O, is missing).
``PatientID`` is the unit splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import (
    check_images,
    check_unique,
    finding_cohort,
    parse_age,
    parse_sex,
    read_csv,
    require,
)

COLUMNS = [
    "ImageID",
    "ImageDir",
    "StudyDate_DICOM",
    "PatientID",
    "PatientBirth",
    "PatientSex_DICOM",
    "Projection",
    "Labels",
]


class PadChestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["padchest"] = "padchest"
    csv: Path
    images: Path | None = None
    label: str = "normal"
    projections: list[str] = ["PA", "AP", "AP_horizontal"]
    missing_images: Literal["error", "drop"] = "error"


def load(spec: PadChestSpec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, COLUMNS, spec.csv)
    check_unique(df, "ImageID", spec.csv)
    labels = df["Labels"].astype("string").str.strip()
    labelled = (labels.notna() & (labels != "") & (labels != "[]")).to_numpy(bool)
    # the lists hold quoted strings: "['normal']"; a label matches as a whole quoted item
    wanted = spec.label.strip().lower()
    items = labels.str.lower().str.findall(r"'\s*([^']*?)\s*'")
    finding = items.map(lambda xs: wanted in xs if isinstance(xs, list) else False).to_numpy(bool)
    sex_text = df["PatientSex_DICOM"].astype("string").str.strip().str.upper()
    sex = parse_sex(sex_text.where(sex_text.isin(["M", "F"])), spec.csv, "PatientSex_DICOM")
    year = pd.to_numeric(df["StudyDate_DICOM"].astype("string").str[:4], errors="coerce")
    born = pd.to_numeric(df["PatientBirth"], errors="coerce")
    age = parse_age((year - born).astype("Float64"), spec.csv, "PatientBirth")
    keep = labelled.copy()
    if spec.projections:
        wanted_views = {p.strip().upper() for p in spec.projections}
        keep &= (
            df["Projection"]
            .astype("string")
            .str.strip()
            .str.upper()
            .isin(wanted_views)
            .fillna(False)
            .to_numpy(bool)
        )
    folder = pd.to_numeric(df["ImageDir"], errors="coerce").astype("Int64").astype("string")
    table = pd.DataFrame(
        {
            "id": df["ImageID"].astype(str),
            "patient_id": df["PatientID"].astype(str),
            "path": (folder.fillna(df["ImageDir"].astype("string")) + "/" + df["ImageID"].astype(str)).astype(
                str
            ),
            "finding": finding.astype(np.int64),
            "sex": sex,
            "age": age,
            "projection": df["Projection"].astype(object),
        }
    )[keep].reset_index(drop=True)
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(table, spec.images, spec.csv, "id", on_missing=spec.missing_images)
    return finding_cohort(
        table,
        name="padchest",
        label=spec.label,
        attributes=["sex", "age"],
        image_root=spec.images,
        source_file=spec.csv,
        dropped_missing_images=dropped,
        dropped_unlabelled=int((~labelled).sum()),
    )
