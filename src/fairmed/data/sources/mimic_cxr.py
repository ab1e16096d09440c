"""MIMIC-CXR-JPG (Johnson et al. 2019) with MIMIC-IV demographics: sex, age, race and insurance.

Expected layout (as PhysioNet ships it; ``.csv`` or ``.csv.gz``)::

    mimic-cxr-2.0.0-metadata.csv    dicom_id, subject_id, study_id, ..., ViewPosition, ..., StudyDate
    mimic-cxr-2.0.0-chexpert.csv    subject_id, study_id, Atelectasis, ..., No Finding, ...,
                                    Support Devices (1.0, 0.0, -1.0 uncertain, empty)
    files/p10/p10000032/s50414267/<dicom_id>.jpg   below ``images`` (the MIMIC-CXR-JPG folder)
    MIMIC-IV hosp/patients.csv      subject_id, gender (F/M), anchor_age, anchor_year, ...
    MIMIC-IV hosp/admissions.csv    subject_id, hadm_id, ..., insurance, ..., race (``ethnicity``
                                    in MIMIC-IV 1.0); optional

``label``: a labeller column, "No Finding" by default; ``uncertain`` as for CheXpert. ``views``:
ViewPosition values kept (PA, AP by default; ``[]`` keeps every view). ``age`` is the age at the
study: anchor_age + (year of StudyDate - anchor_year), both shifted alike by the
de-identification. ``race`` and ``insurance`` are per patient over their admissions: the one
recorded value, or missing when the admissions disagree (race: "White", "Black", "Asian",
"Hispanic", "American Indian", "Pacific Islander", else "Other"; unknown, unable to obtain and
declined are missing); insurance is the patient's most frequent value. ``subject_id`` is the unit
splits keep together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.groups import is_missing
from fairmed.data.sources._common import (
    check_images,
    cxr_finding,
    fail,
    finding_cohort,
    map_categories,
    parse_sex,
    read_csv,
    require,
)
from fairmed.errors import DataError

RACE_RULES = [
    ("hispanic", "Hispanic"),
    ("south american", "Hispanic"),
    ("black", "Black"),
    ("asian", "Asian"),
    ("american indian", "American Indian"),
    ("pacific islander", "Pacific Islander"),
    ("white", "White"),
]


class MimicCxrSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["mimic_cxr"] = "mimic_cxr"
    metadata: Path
    labels: Path
    patients: Path
    admissions: Path | None = None
    images: Path | None = None
    label: str = "No Finding"
    uncertain: Literal["zeros", "ones", "drop"] = "zeros"
    views: list[str] = ["PA", "AP"]
    missing_images: Literal["error", "drop"] = "error"


def _per_patient(adm: pd.DataFrame, column: str, values: pd.Series, rule: str) -> dict:
    """subject_id -> one value: the only recorded one (``rule="same"``) or the most frequent."""
    frame = pd.DataFrame({"subject_id": adm["subject_id"].to_numpy(), "value": values.to_numpy()}).dropna()
    if rule == "same":
        distinct = frame.drop_duplicates().groupby("subject_id")["value"]
        agreed = distinct.agg(lambda v: v.iloc[0] if len(v) == 1 else None)
        return agreed.dropna().to_dict()
    counts = frame.groupby(["subject_id", "value"]).size().reset_index(name="n")
    counts = counts.sort_values(["subject_id", "n", "value"], ascending=[True, False, True])
    return counts.drop_duplicates("subject_id").set_index("subject_id")["value"].to_dict()


def load(spec: MimicCxrSpec) -> Cohort:
    meta = read_csv(spec.metadata)
    require(meta, ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate"], spec.metadata)
    labels = read_csv(spec.labels)
    require(labels, ["subject_id", "study_id", spec.label], spec.labels)
    patients = read_csv(spec.patients)
    require(patients, ["subject_id", "gender", "anchor_age", "anchor_year"], spec.patients)
    if spec.views:
        wanted = {v.strip().upper() for v in spec.views}
        meta = meta[meta["ViewPosition"].astype("string").str.strip().str.upper().isin(wanted).fillna(False)]
    rows = meta.merge(
        labels[["subject_id", "study_id", spec.label]], on=["subject_id", "study_id"], how="inner"
    )
    rows = rows.merge(
        patients[["subject_id", "gender", "anchor_age", "anchor_year"]], on="subject_id", how="left"
    )
    if rows.empty:
        raise DataError(
            f"{spec.metadata}: no image has a labelled study in {spec.labels} (views {spec.views})"
        )
    label, keep = cxr_finding(rows[spec.label], spec.uncertain, spec.labels, spec.label)
    year = pd.to_numeric(rows["StudyDate"].astype("string").str[:4], errors="coerce")
    bad = year.isna().to_numpy()
    if bad.any():
        raise fail(spec.metadata, "StudyDate", bad, rows["StudyDate"], "a date YYYYMMDD")
    age = rows["anchor_age"] + (year - rows["anchor_year"])
    subject, study = (
        rows["subject_id"].astype("int64").astype(str),
        rows["study_id"].astype("int64").astype(str),
    )
    table = pd.DataFrame(
        {
            "id": rows["dicom_id"].astype(str),
            "patient_id": subject,
            "study_id": study,
            "path": "files/p"
            + subject.str[:2]
            + "/p"
            + subject
            + "/s"
            + study
            + "/"
            + rows["dicom_id"].astype(str)
            + ".jpg",
            "finding": label,
            "sex": parse_sex(rows["gender"], spec.patients, "gender"),
            "age": age.where((age >= 0) & (age <= 125)).astype(float),
            "view": rows["ViewPosition"].astype(object),
        }
    )
    attributes = ["sex", "age"]
    if spec.admissions is not None:
        adm = read_csv(spec.admissions)
        race_column = "race" if "race" in adm.columns else "ethnicity"
        require(adm, ["subject_id", race_column, "insurance"], spec.admissions)
        race = _per_patient(adm, race_column, map_categories(adm[race_column], RACE_RULES), "same")
        insurance = adm["insurance"].astype(object).where(~is_missing(adm["insurance"]), None)
        insured = _per_patient(adm, "insurance", insurance, "most")
        for column, values in (("race", race), ("insurance", insured)):
            mapped = rows["subject_id"].map(values).astype(object)
            table[column] = mapped.where(mapped.notna(), None).to_numpy()
        attributes += ["race", "insurance"]
    table = table[keep].reset_index(drop=True)
    dropped = 0
    if spec.images is not None:
        table, dropped = check_images(table, spec.images, spec.metadata, "id", on_missing=spec.missing_images)
    return finding_cohort(
        table,
        name="mimic_cxr",
        label=spec.label,
        attributes=attributes,
        image_root=spec.images,
        source_file=spec.metadata,
        dropped_missing_images=dropped,
        dropped_uncertain=int((~keep).sum()),
    )
