"""NIH ChestX-ray14 (Wang et al. 2017): frontal chest radiographs with 14 findings, sex and age.

Expected layout (as the NIH Box folder ships it)::

    Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)
                            Image Index, Finding Labels ("Effusion|Infiltration" or "No Finding"),
                            Follow-up #, Patient ID, Patient Age, Patient Gender (M/F),
                            View Position (PA/AP), OriginalImage[Width, Height], ...
    images_001/images/<Image Index>   ... images_012/images/: each file is found anywhere below
                            ``images``

``label``: "No Finding" (default; 1 = no finding) or one of the 14 findings (1 = listed in
Finding Labels). ``views``: View Position values kept (PA, AP). ``age``: Patient Age in years
("58", or "058Y" in the first release; months "M" and days "D" count as 0 years); the few ages
above 125 (e.g. 411, known entry errors) are missing and counted in ``implausible_ages``.
``Patient ID`` is the unit splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import (
    check_unique,
    fail,
    finding_cohort,
    parse_sex,
    place_images,
    read_csv,
    require,
)

FINDINGS = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
]  # fmt: skip


class NihCxr14Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["nih_cxr14"] = "nih_cxr14"
    csv: Path
    images: Path | None = None
    label: str = "No Finding"
    views: list[str] = ["PA", "AP"]
    missing_images: Literal["error", "drop"] = "error"

    @field_validator("label")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ("No Finding", *FINDINGS):
            raise ValueError(f"expected 'No Finding' or one of {', '.join(FINDINGS)}")
        return v


def parse_nih_age(values: pd.Series, file: Path | str, column: str) -> tuple[pd.Series, int]:
    """'58' or '058Y' -> 58.0; '011M'/'020D' -> 0.0; above 125 -> NaN (counted)."""
    text = values.astype("string").str.strip().str.upper()
    parts = text.str.extract(r"^(\d+)([YMD]?)$")
    bad = (values.notna() & parts[0].isna()).to_numpy(bool)
    if bad.any():
        raise fail(file, column, bad, values, "an age such as 58 or 058Y")
    years = pd.to_numeric(parts[0], errors="coerce").where(parts[1].isin(["", "Y"]).fillna(True), 0.0)
    implausible = (years > 125).fillna(False)
    return years.where(~implausible).astype(float), int(implausible.sum())


def load(spec: NihCxr14Spec) -> Cohort:
    df = read_csv(spec.csv)
    columns = [
        "Image Index",
        "Finding Labels",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
    ]
    require(df, columns, spec.csv)
    check_unique(df, "Image Index", spec.csv)
    findings = df["Finding Labels"].astype("string").str.split("|")
    present = findings.map(lambda f: spec.label in f if isinstance(f, list) else False).to_numpy(bool)
    age, implausible = parse_nih_age(df["Patient Age"], spec.csv, "Patient Age")
    table = pd.DataFrame(
        {
            "id": df["Image Index"].astype(str),
            "patient_id": df["Patient ID"].astype(str),
            "finding": present.astype(np.int64),
            "findings": df["Finding Labels"].astype(object),
            "sex": parse_sex(df["Patient Gender"], spec.csv, "Patient Gender"),
            "age": age,
            "view": df["View Position"].astype(object),
        }
    )
    keep = np.ones(len(df), dtype=bool)
    if spec.views:
        wanted = {v.strip().upper() for v in spec.views}
        view = df["View Position"].astype("string").str.strip().str.upper()
        keep = view.isin(wanted).fillna(False).to_numpy(bool)
    table = table[keep].reset_index(drop=True)
    dropped = 0
    if spec.images is not None:
        names = table["id"]
        table, dropped = place_images(table, spec.images, spec.csv, "Image Index", names, spec.missing_images)
    else:
        table["path"] = table["id"]
    return finding_cohort(
        table,
        name="nih_cxr14",
        label=spec.label,
        attributes=["sex", "age"],
        image_root=spec.images,
        source_file=spec.csv,
        dropped_missing_images=dropped,
        implausible_ages=implausible,
    )
