"""The attribute histogram's counts: each raw attribute value (FST 1-6, sex, age bins, missing) per
label, from the Predictions of one run and one split, so each image is counted once."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairmed.report.context import ReportContext
from fairmed.report.core.groups import assign, group_specs
from fairmed.schema import (
    ID,
    PROBA_PREFIX,
    REGRESSION_VALUES,
    RUN_KEYS,
    Y_PRED,
    Y_SCORE,
    Y_TRUE,
    is_auxiliary,
)

MISSING = "(missing)"
MAX_VALUES = 12  # more distinct numbers than this are binned; more categories: the rest is "other"
MAX_LABELS = 4  # more classes than this: the histogram counts images only
COUNT_COLUMNS = ("attribute", "value", "label", "n", "group")


def one_run(predictions: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of the first run (study order) on the test split (else the first split), one per
    image; and a description such as "seed 0, erm, test split". Cross-validation folds are kept
    together: the test folds of one repeat hold every image once."""
    rows, parts = predictions, []
    for key in (k for k in RUN_KEYS if k in predictions.columns and k != "fold"):
        values = list(dict.fromkeys(rows[key]))
        value = "test" if key == "split" and "test" in values else values[0]
        rows = rows[rows[key] == value]
        if predictions[key].nunique() > 1:
            parts.append(f"{value} split" if key == "split" else f"{key} {value}")
    if ID in rows.columns:
        rows = rows.drop_duplicates(ID)
    return rows, ", ".join(parts)


def attribute_columns(predictions: pd.DataFrame) -> list[str]:
    """The sensitive-attribute columns of Predictions: everything but run keys, ids, labels, scores and
    auxiliary columns (:data:`fairmed.schema.AUXILIARY_COLUMNS`)."""
    fixed = {*RUN_KEYS, ID, Y_TRUE, Y_SCORE, Y_PRED, *REGRESSION_VALUES}
    return [
        c
        for c in predictions.columns
        if c not in fixed and not c.startswith(PROBA_PREFIX) and not is_auxiliary(str(c))
    ]


def _step(span: float) -> float:
    """The smallest 1/2/5 x 10^k bin width that needs at most MAX_VALUES bins."""
    power = 10 ** math.floor(math.log10(max(span, 1e-12) / MAX_VALUES))
    return next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= MAX_VALUES)


def binned(values: pd.Series) -> pd.Series:
    """Raw values as histogram categories: numbers with many distinct values in equal-width bins
    ("40-49" for whole numbers, "40-50" otherwise: lower edge included), rare categories as "other"."""
    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and present.nunique() > MAX_VALUES:
        width = _step(float(present.max() - present.min()))
        low = np.floor(values.astype(float) / width) * width
        whole = bool((present == present.round()).all()) and width == round(width)
        labels = low.map(lambda v: f"{v:g}-{v + width - (1 if whole else 0):g}" if pd.notna(v) else None)
        return labels.where(values.notna(), MISSING)
    text = values.map(lambda v: f"{v:g}" if isinstance(v, float) else str(v)).where(values.notna(), MISSING)
    top = text[text != MISSING].value_counts().index[:MAX_VALUES]
    return text.where(text.isin(top) | (text == MISSING), "other")


def _label_names(labels: pd.Series, classes: list[str]) -> pd.Series:
    """Class names for y_true (from the cohort summary's class columns when they match)."""
    codes = sorted(labels.dropna().unique())
    if len(classes) == len(codes) and all(float(c) == i for i, c in enumerate(codes)):
        return labels.map(dict(zip(codes, classes)))
    return labels.map(lambda v: f"label {v:g}" if isinstance(v, float) else f"label {v}")


def attribute_counts(ctx: ReportContext, classes: list[str]) -> tuple[pd.DataFrame, str]:
    """Counts per (attribute column, raw value, label) of one run and split, with the audited group
    each value falls in (for its colour; NaN when none takes it). Empty without Predictions."""
    if ctx.predictions is None or ctx.predictions.empty:
        return pd.DataFrame(columns=list(COUNT_COLUMNS)), ""
    rows, which = one_run(ctx.predictions)
    if rows.empty:
        return pd.DataFrame(columns=list(COUNT_COLUMNS)), which
    groups = _groups_per_column(ctx, rows)
    has_labels = Y_TRUE in rows.columns and rows[Y_TRUE].nunique() <= MAX_LABELS
    label = _label_names(rows[Y_TRUE], classes) if has_labels else pd.Series("all", index=rows.index)
    frames = []
    for column in attribute_columns(rows):
        value = binned(rows[column])
        counts = pd.DataFrame({"value": value, "label": label}).value_counts(sort=False).rename("n")
        counts = counts.reset_index()
        if MISSING not in set(counts["value"]):  # say so: a bar of 0 rather than no bar
            counts.loc[len(counts)] = {"value": MISSING, "label": label.iloc[0], "n": 0}
        group = groups.get(column)
        counts["group"] = (
            counts["value"].map(pd.Series(group.values, index=value).groupby(level=0).first())
            if group is not None
            else np.nan
        )
        frames.append(counts.assign(attribute=column))
    if not frames:
        return pd.DataFrame(columns=list(COUNT_COLUMNS)), which
    return pd.concat(frames, ignore_index=True)[list(COUNT_COLUMNS)], which


def _groups_per_column(ctx: ReportContext, rows: pd.DataFrame) -> dict[str, pd.Series]:
    """Attribute column -> the audited group of each row (from the GroupSpec of one-column groupings)."""
    if ctx.results is None:
        return {}
    names = [a for a in dict.fromkeys(ctx.results["attribute"].astype(str)) if a != "overall"]
    out = {}
    for spec in group_specs(ctx, names).values():
        if len(spec.attributes) == 1 and spec.attributes[0] not in out:
            out[spec.attributes[0]] = assign(rows, spec)
    return out


__all__ = ["attribute_counts", "binned", "one_run"]
