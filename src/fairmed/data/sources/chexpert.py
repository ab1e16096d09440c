"""CheXpert (Irvin et al. 2019): chest radiographs with 14 labeller observations, sex, age and (DEMO) race.

Expected layout (as Stanford ships it)::

    CheXpert-v1.0-small/train.csv   Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, Enlarged
    CheXpert-v1.0-small/valid.csv   Cardiomediastinum, Cardiomegaly, ..., Support Devices
                                    (1.0 positive, 0.0 negative, -1.0 uncertain, empty: not mentioned)
    CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg   (``Path`` starts with the
                                    folder's own name, so ``root`` is the folder that holds it:
                                    by default the parent of the first CSV's folder)
    CHEXPERT DEMO.xlsx (or .csv)    optional ``demographics``: PATIENT, GENDER, AGE_AT_CXR,
                                    PRIMARY_RACE, ETHNICITY

``csv`` lists one or more of the split tables (train and valid are stacked). ``label``: any
observation column, "No Finding" by default (1 = no finding); ``uncertain``: -1.0 counts as 0
(``zeros``, U-Zeros), 1 (``ones``) or the row is dropped (``drop``). ``views``: ``frontal``
(default) or ``all``. Attributes: ``sex`` (Sex: Female/Male, Unknown = missing), ``age``, and
with the demographics table ``race`` from PRIMARY_RACE: "White", "Black", "Asian", "Pacific
Islander", "American Indian", else "Other"; Unknown and refused are missing. The patient
(``patient00001`` in Path) is the unit splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import (
    check_images,
    check_unique,
    cxr_finding,
    finding_cohort,
    map_categories,
    parse_age,
    parse_sex,
    read_csv,
    require,
)
from fairmed.errors import DataError

RACE_RULES = [
    ("black", "Black"),
    ("asian", "Asian"),
    ("pacific islander", "Pacific Islander"),
    ("american indian", "American Indian"),
    ("white", "White"),
]


class ChexpertSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["chexpert"] = "chexpert"
    csv: list[Path]
    root: Path | None = None
    demographics: Path | None = None
    label: str = "No Finding"
    uncertain: Literal["zeros", "ones", "drop"] = "zeros"
    views: Literal["frontal", "all"] = "frontal"
    missing_images: Literal["error", "drop"] = "error"

    @field_validator("csv", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, (str, Path)) else v


def load(spec: ChexpertSpec) -> Cohort:
    frames = []
    for file in spec.csv:
        df = read_csv(file)
        require(df, ["Path", "Sex", "Age", "Frontal/Lateral", spec.label], file)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    where = spec.csv[0] if len(spec.csv) == 1 else ", ".join(map(str, spec.csv))
    check_unique(df, "Path", where)
    label, keep = cxr_finding(df[spec.label], spec.uncertain, where, spec.label)
    sex = parse_sex(df["Sex"], where, "Sex")
    age = parse_age(df["Age"], where, "Age")
    frontal = (df["Frontal/Lateral"].astype("string").str.strip().str.lower() == "frontal").fillna(False)
    use = keep & (frontal.to_numpy(bool) if spec.views == "frontal" else True)
    patient = df["Path"].astype("string").str.extract(r"(patient\d+)", expand=False)
    table = pd.DataFrame(
        {
            "id": df["Path"].astype(str),
            "patient_id": patient.astype(object),
            "path": df["Path"].astype(str),
            "finding": label,
            "sex": sex,
            "age": age,
            "view": df["Frontal/Lateral"].astype(object),
        }
    )
    attributes = ["sex", "age"]
    if spec.demographics is not None:
        demo = read_csv(spec.demographics)
        require(demo, ["PATIENT", "PRIMARY_RACE"], spec.demographics)
        check_unique(demo, "PATIENT", spec.demographics)
        race = map_categories(demo["PRIMARY_RACE"], RACE_RULES)
        by_patient = patient.map(dict(zip(demo["PATIENT"].astype(str), race))).astype(object)
        table["race"] = by_patient.where(by_patient.notna(), None).to_numpy()
        attributes.append("race")
    table = table[use].reset_index(drop=True)
    if table.empty:
        raise DataError(
            f"{where}: no rows left after keeping {spec.views} views (uncertain: {spec.uncertain})"
        )
    root = spec.root if spec.root is not None else spec.csv[0].parent.parent
    table, dropped = check_images(table, root, where, "id", on_missing=spec.missing_images)
    return finding_cohort(
        table,
        name="chexpert",
        label=spec.label,
        attributes=attributes,
        image_root=root,
        source_file=where,
        dropped_missing_images=dropped,
        dropped_uncertain=int((~keep).sum()),
    )
