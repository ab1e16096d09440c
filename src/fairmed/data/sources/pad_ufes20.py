"""PAD-UFES-20 (Pacheco et al. 2020): smartphone skin-lesion photographs with sex, age and Fitzpatrick type.

Expected layout (as the Mendeley archive ships it)::

    metadata.csv                    patient_id, lesion_id, ..., background_father, background_mother,
                                    age, ..., gender (FEMALE/MALE), ..., fitspatrick (1-6, the
                                    dataset's spelling), ..., diagnostic (ACK, BCC, MEL, NEV, SCC,
                                    SEK), ..., img_id, biopsed
    images/**/<img_id>              each ``img_id`` is found anywhere below ``images`` (the
                                    archive splits them into imgs_part_1..3)

``label``: ``cancer`` (BCC, SCC, MEL = 1; the binary target of the literature) or
``diagnostic`` (the six classes, in the order above). Attributes: ``sex`` (from gender),
``fst`` (from fitspatrick), ``age``, and ``ancestry`` from the parents' background: the
country when both parents' backgrounds are recorded and the same ("Pomerania", "Germany",
...), "mixed" when both are recorded and differ, missing when either is UNK or empty.
``UNK`` and empty values are missing (dropped from groups, never a group of their own unless
a grouping asks with ``+missing``). ``patient_id`` is the unit that splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.groups import is_missing
from fairmed.data.sources._common import (
    check_unique,
    encode_labels,
    parse_age,
    parse_fst,
    parse_sex,
    place_images,
    read_csv,
    require,
)

DIAGNOSES = ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
CANCER = ["BCC", "MEL", "SCC"]
COLUMNS = [
    "patient_id",
    "lesion_id",
    "background_father",
    "background_mother",
    "age",
    "gender",
    "fitspatrick",
    "diagnostic",
    "img_id",
]


class PadUfes20Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["pad_ufes20"] = "pad_ufes20"
    csv: Path
    images: Path | None = None
    label: Literal["cancer", "diagnostic"] = "cancer"
    missing_images: Literal["error", "drop"] = "error"


def ancestry(father: pd.Series, mother: pd.Series) -> pd.Series:
    """The parents' background as one attribute (the rule in the module docstring)."""
    known = ~is_missing(father) & ~is_missing(mother)
    f = father.astype("string").str.strip().str.title()
    m = mother.astype("string").str.strip().str.title()
    same = (f == m).fillna(False).to_numpy(dtype=bool)
    out = np.where(known & same, f.astype(object), np.where(known, "mixed", None))
    return pd.Series(out, index=father.index, dtype=object)


def load(spec: PadUfes20Spec) -> Cohort:
    df = read_csv(spec.csv)
    require(df, COLUMNS, spec.csv)
    check_unique(df, "img_id", spec.csv)
    codes, names = encode_labels(df["diagnostic"], spec.csv, "diagnostic", DIAGNOSES)
    table = pd.DataFrame(
        {
            "id": df["img_id"].astype(str),
            "patient_id": df["patient_id"].astype(str),
            "lesion_id": df["lesion_id"].astype(str),
            "diagnostic_text": np.asarray(DIAGNOSES, dtype=object)[codes],
        }
    )
    if spec.label == "cancer":
        table["cancer"] = np.isin(table["diagnostic_text"], CANCER).astype(np.int64)
        label, names = "cancer", ["not cancer", "cancer"]
    else:
        table["diagnostic"] = codes
        label = "diagnostic"
    table["sex"] = parse_sex(df["gender"], spec.csv, "gender")
    table["fst"] = parse_fst(df["fitspatrick"], spec.csv, "fitspatrick")
    table["age"] = parse_age(df["age"], spec.csv, "age")
    table["ancestry"] = ancestry(df["background_father"], df["background_mother"])
    dropped = 0
    if spec.images is not None:
        table, dropped = place_images(
            table, spec.images, spec.csv, "img_id", df["img_id"].astype(str), spec.missing_images
        )
    return Cohort(
        table=table,
        labels=[label],
        attributes=["sex", "fst", "age", "ancestry"],
        class_names={label: names},
        image_root=spec.images,
        meta={"source": "pad_ufes20", "source_file": str(spec.csv), "dropped_missing_images": dropped},
        name="pad_ufes20",
    )
