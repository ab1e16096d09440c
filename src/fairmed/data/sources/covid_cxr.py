"""COVID-19 image data collection (Cohen et al. 2020, ieee8023/covid-chestxray-dataset): chest X-rays with sex, age.

Expected layout (as the GitHub repository ships it)::

    metadata.csv            patientid, offset, sex (M/F), age, finding, ..., view, modality,
                            date, location, folder, filename, doi, url, license, ...
    images/<filename>       the image of each row (``images`` is that folder)

``label``: ``covid`` = 1 when ``finding`` contains "COVID-19" (e.g. "Pneumonia/Viral/COVID-19"),
0 for every other finding (other pneumonias, "No Finding"); rows whose finding is "todo" or
empty are dropped (counted as ``dropped_unlabelled``). Only frontal radiographs are kept by
default: ``views`` (PA, AP, AP Supine; ``[]`` keeps every view) and ``modality`` (X-ray; null
keeps CT too); the others are counted as ``dropped_other_views``. Attributes ``sex`` and
``age`` (empty = missing); ``patientid`` becomes ``patient_id``, the unit splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import check_images, check_unique, parse_age, parse_sex, read_csv, require

FRONTAL = ["PA", "AP", "AP Supine"]


class CovidCxrSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["covid_cxr"] = "covid_cxr"
    csv: Path
    images: Path | None = None
    views: list[str] = FRONTAL
    modality: str | None = "X-ray"
    missing_images: Literal["error", "drop"] = "error"


def load(spec: CovidCxrSpec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, ["patientid", "sex", "age", "finding", "view", "modality", "filename"], spec.csv)
    keep = np.ones(len(df), dtype=bool)
    if spec.views:
        wanted = {v.strip().lower() for v in spec.views}
        keep &= df["view"].astype("string").str.strip().str.lower().isin(wanted).fillna(False).to_numpy(bool)
    if spec.modality:
        keep &= (
            (df["modality"].astype("string").str.strip().str.lower() == spec.modality.lower())
            .fillna(False)
            .to_numpy(bool)
        )
    finding = df["finding"].astype("string").str.strip()
    labelled = (finding.notna() & (finding != "") & (finding.str.lower() != "todo")).to_numpy(bool)
    sex = parse_sex(df["sex"], spec.csv, "sex")  # on every row, so that errors name the CSV's row
    age = parse_age(df["age"], spec.csv, "age")
    use = keep & labelled
    rows = df[use]
    check_unique(rows, "filename", spec.csv)
    table = pd.DataFrame(
        {
            "id": rows["filename"].astype(str),
            "patient_id": rows["patientid"].astype(str),
            "finding": finding[use].astype(object),
            "view": rows["view"].astype(object),
            "covid": finding[use].str.contains("COVID-19", regex=False).to_numpy(np.int64),
            "sex": sex[use],
            "age": age[use],
            "path": rows["filename"].astype(str),
        }
    ).reset_index(drop=True)
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(table, spec.images, spec.csv, "id", on_missing=spec.missing_images)
    return Cohort(
        table=table,
        labels=["covid"],
        attributes=["sex", "age"],
        class_names={"covid": ["other", "COVID-19"]},
        image_root=spec.images,
        meta={
            "source": "covid_cxr",
            "source_file": str(spec.csv),
            "dropped_missing_images": dropped,
            "dropped_other_views": int((~keep).sum()),
            "dropped_unlabelled": int((keep & ~labelled).sum()),
        },
        name="covid_cxr",
    )
