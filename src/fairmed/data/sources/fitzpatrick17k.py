"""Fitzpatrick17k (Groh et al., CVPR-W 2021): clinical images with Fitzpatrick skin type labels.

Expected layout::

    fitzpatrick17k.csv      the official annotation table, columns: md5hash, fitzpatrick_scale,
                            fitzpatrick_centaur, label, nine_partition_label,
                            three_partition_label, qc, url, url_alphanum
    images/<md5hash>.jpg    one image per row (optional: without ``images`` the cohort has
                            paths but no image root, enough for summaries)

``label`` picks the granularity: ``three_partition_label`` (benign / malignant /
non-neoplastic), ``nine_partition_label``, ``label`` (114 conditions) or ``malignant``
(binary: three_partition_label == malignant). ``fst_column`` picks the annotation
(``fitzpatrick_scale`` or ``fitzpatrick_centaur``); -1 means missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import (
    check_images,
    check_unique,
    encode_labels,
    parse_fst,
    read_csv,
    require,
)

COLUMNS = [
    "md5hash",
    "fitzpatrick_scale",
    "fitzpatrick_centaur",
    "label",
    "nine_partition_label",
    "three_partition_label",
]


class Fitzpatrick17kSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["fitzpatrick17k"] = "fitzpatrick17k"
    csv: Path
    images: Path | None = None
    label: Literal["three_partition_label", "nine_partition_label", "label", "malignant"] = (
        "three_partition_label"
    )
    fst_column: Literal["fitzpatrick_scale", "fitzpatrick_centaur"] = "fitzpatrick_scale"
    missing_images: Literal["error", "drop"] = "error"


def load(spec: Fitzpatrick17kSpec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, COLUMNS, spec.csv)
    check_unique(df, "md5hash", spec.csv)
    out = df.rename(columns={"md5hash": "id"})
    out["fst"] = parse_fst(df[spec.fst_column], spec.csv, spec.fst_column)
    if spec.label == "malignant":
        three = df["three_partition_label"].astype("string").str.strip().str.lower()
        out["malignant"] = (three == "malignant").fillna(False).to_numpy(dtype=np.int64)
        names = ["not malignant", "malignant"]
        label = "malignant"
    else:
        label = "condition" if spec.label == "label" else spec.label
        codes, names = encode_labels(df[spec.label], spec.csv, spec.label)
        out[f"{label}_text"] = df[spec.label].astype(object)
        out[label] = codes
    out["path"] = out["id"].astype(str) + ".jpg"
    dropped = 0
    if spec.images is not None:
        out, dropped = check_images(out, spec.images, spec.csv, "id", on_missing=spec.missing_images)
    return Cohort(
        table=out,
        labels=[label],
        attributes=["fst"],
        class_names={label: names},
        image_root=spec.images,
        meta={"source": "fitzpatrick17k", "source_file": str(spec.csv), "dropped_missing_images": dropped},
        name="fitzpatrick17k",
    )
