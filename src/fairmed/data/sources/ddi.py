"""DDI, Diverse Dermatology Images (Daneshjou et al. 2022): biopsy-proven lesions with skin tone 12/34/56.

Expected layout (as the Stanford AIMI release ships it)::

    ddi_metadata.csv        (index), DDI_ID, DDI_file, skin_tone (12, 34 or 56), malignant
                            (True/False), disease
    <images>/<DDI_file>     one PNG per row; ``images`` is their folder (in the release the
                            CSV's own folder: ``images: .``)

``label``: ``malignant`` (default) or ``disease`` (the 78 diagnoses, sorted). The attribute
``skin_tone`` holds DDI's three Fitzpatrick pairs as group names "FST 1-2", "FST 3-4", "FST 5-6"
(DDI records the pair, not the type, so there is no ``fst`` column). DDI has no sex, age or
patient id: every image stands alone in splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import check_images, check_unique, encode_labels, fail, read_csv, require

TONES = {12: "FST 1-2", 34: "FST 3-4", 56: "FST 5-6"}


class DdiSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["ddi"] = "ddi"
    csv: Path
    images: Path | None = None
    label: Literal["malignant", "disease"] = "malignant"
    missing_images: Literal["error", "drop"] = "error"


def load(spec: DdiSpec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, ["DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"], spec.csv)
    check_unique(df, "DDI_file", spec.csv)
    tone = pd.to_numeric(df["skin_tone"], errors="coerce")
    bad = ~tone.isin(list(TONES)).to_numpy(bool)
    if bad.any():
        raise fail(spec.csv, "skin_tone", bad, df["skin_tone"], "12, 34 or 56")
    malignant = (
        df["malignant"].astype("string").str.strip().str.lower().map({"true": 1, "false": 0, "1": 1, "0": 0})
    )
    bad = malignant.isna().to_numpy(bool)
    if bad.any():
        raise fail(spec.csv, "malignant", bad, df["malignant"], "True or False")
    table = pd.DataFrame(
        {
            "id": df["DDI_file"].astype(str),
            "path": df["DDI_file"].astype(str),
            "skin_tone": tone.map(TONES).astype(object),
            "disease_text": df["disease"].astype(object),
        }
    )
    if spec.label == "malignant":
        table["malignant"] = malignant.to_numpy(np.int64)
        names = ["benign", "malignant"]
    else:
        table["disease"], names = encode_labels(df["disease"], spec.csv, "disease")
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(table, spec.images, spec.csv, "id", on_missing=spec.missing_images)
    return Cohort(
        table=table,
        labels=[spec.label],
        attributes=["skin_tone"],
        class_names={spec.label: names},
        image_root=spec.images,
        meta={"source": "ddi", "source_file": str(spec.csv), "dropped_missing_images": dropped},
        name="ddi",
    )
