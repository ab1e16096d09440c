"""Chest X-ray embeddings in the MIMIC-CXR style: precomputed image embeddings + demographics + labels.

Expected layout (file names are free; columns are named in the spec)::

    embeddings.npz | .parquet | .csv
        npz: arrays ``ids`` (n,) and ``embeddings`` (n, d);
        parquet/csv: an ``id_column`` plus either one list column ``embedding`` or the
        numeric columns ``emb_0 .. emb_{d-1}`` (or every other numeric column)
    tables: one or more CSV/Parquet tables joined onto the embeddings in order, each on its
        ``on`` column (e.g. metadata on ``dicom_id``, demographics on ``subject_id``,
        CheXpert labels on ``study_id``), together giving ``race``, ``sex``, ``age``,
        ``insurance`` and the label column (e.g. ``No Finding``).

CheXpert-style label values: 1 positive, 0 negative, -1 uncertain (``uncertain``:
negative / positive / drop), empty = not mentioned = negative. The label column gets a
snake-case name (``No Finding`` -> ``no_finding``). MIMIC race strings are mapped to
White / Black / Asian / Hispanic / American Indian/Alaska Native (its own group, as the GCE
paper's Fig. 1 keeps it; it is small) / Other (``UNKNOWN``, ``UNABLE TO OBTAIN``, ``PATIENT
DECLINED TO ANSWER`` are missing) unless ``race_map: none``. ``sex`` accepts F/M.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from fairmed.data.cohort import Cohort
from fairmed.data.sources._common import check_unique, fail, parse_age, parse_sex, read_csv, require
from fairmed.errors import DataError

RACE_MISSING = ("UNKNOWN", "UNABLE TO OBTAIN", "PATIENT DECLINED")


class JoinTable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    on: str = "id"


class CxrEmbeddingsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["cxr_embeddings"] = "cxr_embeddings"
    embeddings: Path
    tables: list[JoinTable] = []
    id_column: str = "id"
    label_column: str = "No Finding"
    race_column: str = "race"
    sex_column: str = "sex"
    age_column: str = "age"
    insurance_column: str | None = "insurance"
    uncertain: Literal["negative", "positive", "drop"] = "negative"
    race_map: Literal["mimic", "none"] = "mimic"


def snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


AIAN = "American Indian/Alaska Native"


def map_race(values: pd.Series) -> pd.Series:
    """MIMIC-IV race strings -> six groups (missing for unknown/declined)."""
    text = values.astype("string").str.upper().str.strip()
    out = np.select(
        [
            text.isna().to_numpy() | (text == "").fillna(True).to_numpy(),
            text.str.startswith(RACE_MISSING).fillna(False).to_numpy(),
            text.str.contains("HISPANIC|LATINO", regex=True).fillna(False).to_numpy(),
            text.str.contains("WHITE").fillna(False).to_numpy(),
            text.str.contains("BLACK").fillna(False).to_numpy(),
            text.str.contains("ASIAN").fillna(False).to_numpy(),
            text.str.contains("AMERICAN INDIAN|ALASKA", regex=True).fillna(False).to_numpy(),
        ],
        [None, None, "Hispanic", "White", "Black", "Asian", AIAN],
        default="Other",
    )
    return pd.Series(out, index=values.index, dtype=object)


def read_embeddings(path: Path, id_column: str) -> tuple[pd.Series, np.ndarray]:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            for key in ("ids", "embeddings"):
                if key not in z.files:
                    raise DataError(
                        f"{path}: npz needs arrays 'ids' and 'embeddings' (has: {', '.join(z.files)})"
                    )
            ids, emb = pd.Series(z["ids"].astype(str)), np.asarray(z["embeddings"], dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(ids):
            raise DataError(
                f"{path}: 'embeddings' must be (n, d) with n = len(ids) = {len(ids)}, got {emb.shape}"
            )
        return ids, emb
    df = read_csv(path)
    require(df, [id_column], path)
    if "embedding" in df.columns:
        emb = np.stack(df["embedding"].to_numpy()).astype(np.float32)
    else:
        numbered = [c for c in df.columns if str(c).startswith("emb_") and str(c)[4:].isdigit()]
        cols = sorted(
            numbered, key=lambda c: int(str(c)[4:])
        ) or [  # emb_10 after emb_9, whatever the file order
            c for c in df.columns if c != id_column and pd.api.types.is_numeric_dtype(df[c])
        ]
        if not cols:
            raise DataError(f"{path}: no embedding columns (expected 'embedding' or emb_0 .. emb_{{d-1}})")
        emb = df[cols].to_numpy(dtype=np.float32)
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        raise DataError(
            f"{path}: row {int(np.flatnonzero(bad)[0])}: non-finite embedding values ({int(bad.sum())} rows)"
        )
    return df[id_column].astype(str), emb


def load(spec: CxrEmbeddingsSpec) -> Cohort:
    ids, emb = read_embeddings(spec.embeddings, spec.id_column)
    table = pd.DataFrame({"id": ids.to_numpy()})
    check_unique(table, "id", spec.embeddings)
    origin: dict[str, Path] = {}
    for join in spec.tables:
        other = read_csv(join.path)
        require(other, [join.on], join.path)
        key = "id" if join.on == spec.id_column else join.on
        if key not in table.columns:
            raise DataError(
                f"{join.path}: cannot join on {join.on!r}: not a column of the tables joined before it"
            )
        other = other.rename(columns={spec.id_column: "id"}) if join.on == spec.id_column else other
        if other[key].duplicated().any():
            check_unique(other, key, join.path)
        new = [c for c in other.columns if c not in table.columns or c == key]
        table[key] = table[key].astype(str)
        other[key] = other[key].astype(str)
        table = table.merge(other[new], on=key, how="left")
        origin.update({c: join.path for c in new if c != key})
    need = [spec.label_column, spec.race_column, spec.sex_column, spec.age_column]
    need += [spec.insurance_column] if spec.insurance_column else []
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise DataError(
            f"{spec.embeddings}: no table gives column {missing[0]!r} (have: {', '.join(table.columns)})"
        )
    src = lambda c: origin.get(c, spec.embeddings)  # noqa: E731
    raw = pd.to_numeric(table[spec.label_column], errors="coerce")
    text_bad = raw.isna().to_numpy() & table[spec.label_column].notna().to_numpy()
    bad = text_bad | ~(raw.isin([0, 1, -1]) | raw.isna()).to_numpy()
    if bad.any():
        raise fail(
            src(spec.label_column), spec.label_column, bad, table[spec.label_column], "1, 0, -1 or empty"
        )
    keep = np.ones(len(table), dtype=bool)
    if spec.uncertain == "drop":
        keep = (raw != -1).to_numpy()
    y = raw.fillna(0).replace(-1, 1 if spec.uncertain == "positive" else 0).to_numpy(dtype=np.int64)
    label = snake(spec.label_column)
    table[label] = y
    table["race"] = map_race(table[spec.race_column]) if spec.race_map == "mimic" else table[spec.race_column]
    table["sex"] = parse_sex(table[spec.sex_column], src(spec.sex_column), spec.sex_column)
    table["age"] = parse_age(table[spec.age_column], src(spec.age_column), spec.age_column)
    attributes = ["race", "sex", "age"]
    if spec.insurance_column:
        table["insurance"] = (
            table[spec.insurance_column].astype(object).where(table[spec.insurance_column].notna(), None)
        )
        attributes.append("insurance")
    table, emb = table[keep].reset_index(drop=True), emb[keep]
    return Cohort(
        table=table,
        labels=[label],
        attributes=attributes,
        class_names={label: [f"not {spec.label_column}", spec.label_column]},
        embeddings=emb,
        meta={
            "source": "cxr_embeddings",
            "source_file": str(spec.embeddings),
            "dropped_uncertain": int((~keep).sum()),
        },
        name="cxr_embeddings",
    )
