"""ISIC 2019 challenge training set: one-hot ground truth + metadata.

Expected layout::

    ISIC_2019_Training_GroundTruth.csv   image, MEL, NV, BCC, AK, BKL, DF, VASC, SCC[, UNK]
                                         (one 1.0 per row)
    ISIC_2019_Training_Metadata.csv      image, age_approx, anatom_site_general, lesion_id, sex
    ISIC_2019_Training_Input/<image>.jpg one image per row (optional)

``label``: ``diagnosis`` (the eight classes, in the column order above) or
``malignant`` (MEL, BCC, SCC = 1; AK, a precursor, counts as benign unless listed in
``malignant_classes``). Every ground-truth row needs a metadata row (and vice versa).
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
    fail,
    parse_age,
    parse_sex,
    read_csv,
    require,
)
from fairmed.errors import DataError

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


class Isic2019Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["isic2019"] = "isic2019"
    ground_truth: Path
    metadata: Path
    images: Path | None = None
    label: Literal["diagnosis", "malignant"] = "diagnosis"
    malignant_classes: list[str] = ["MEL", "BCC", "SCC"]
    missing_images: Literal["error", "drop"] = "error"


def load(spec: Isic2019Spec) -> Cohort:
    gt = read_csv(spec.ground_truth)
    require(gt, ["image", *CLASSES], spec.ground_truth)
    check_unique(gt, "image", spec.ground_truth)
    onehot = gt[CLASSES].apply(lambda c: c.astype("float64"), axis=0)
    values = onehot.to_numpy()
    bad_value = ~np.isin(values, [0.0, 1.0])
    if bad_value.any():
        r, c = np.argwhere(bad_value)[0]
        raise fail(spec.ground_truth, CLASSES[c], bad_value[:, c], gt[CLASSES[c]], "0 or 1")
    not_one = values.sum(axis=1) != 1
    if not_one.any():
        r = int(np.flatnonzero(not_one)[0])
        raise DataError(
            f"{spec.ground_truth}: row {r} (image {gt['image'].iloc[r]!r}): expected exactly one class = 1 in"
            f" {CLASSES}, got {int(values[r].sum())} ({int(not_one.sum())} such rows)"
        )
    md = read_csv(spec.metadata)
    require(md, ["image", "age_approx", "sex"], spec.metadata)
    check_unique(md, "image", spec.metadata)
    table = gt[["image"]].merge(md, on="image", how="left", indicator=True)
    orphan = (table["_merge"] != "both").to_numpy()
    if orphan.any():
        r = int(np.flatnonzero(orphan)[0])
        raise DataError(
            f"{spec.metadata}: no metadata row for image {table['image'].iloc[r]!r} (row {r} of {spec.ground_truth.name}; {int(orphan.sum())} missing)"
        )
    extra = ~md["image"].isin(gt["image"]).to_numpy()
    if extra.any():
        r = int(np.flatnonzero(extra)[0])
        raise DataError(
            f"{spec.metadata}: column 'image' row {r}: image {md['image'].iloc[r]!r} has no ground-truth row"
        )
    table = table.drop(columns="_merge").rename(columns={"image": "id"})
    table["sex"] = parse_sex(table["sex"], spec.metadata, "sex")
    table["age"] = parse_age(table["age_approx"], spec.metadata, "age_approx")
    code = values.argmax(axis=1)
    table["dx"] = np.asarray(CLASSES, dtype=object)[code]
    if spec.label == "diagnosis":
        table["diagnosis"] = code
        names = CLASSES
    else:
        unknown = set(spec.malignant_classes) - set(CLASSES)
        if unknown:
            raise DataError(
                f"isic2019 malignant_classes: unknown {sorted(unknown)} (expected from {CLASSES})"
            )
        table["malignant"] = np.isin(table["dx"], spec.malignant_classes).astype(np.int64)
        names = ["benign", "malignant"]
    table["path"] = table["id"].astype(str) + ".jpg"
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(
            table, spec.images, spec.ground_truth, "id", on_missing=spec.missing_images
        )
    return Cohort(
        table=table,
        labels=[spec.label],
        attributes=["sex", "age"],
        class_names={spec.label: list(names)},
        image_root=spec.images,
        meta={"source": "isic2019", "source_file": str(spec.ground_truth), "dropped_missing_images": dropped},
        name="isic2019",
    )
