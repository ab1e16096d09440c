"""Any metric function, grouped by a sensitive feature (fairlearn ``MetricFrame``-style).

``by_group({"acc": accuracy_score}, y_true, y_pred, groups)`` calls each function on each group's
rows (and on all rows: the ``overall`` row), for metrics the vectorized audit does not know.
``difference`` and ``ratio`` reduce the table to the literature's gap forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from fairmed.metrics.validate import as_codes, check_lengths
from fairmed.schema import OVERALL


def by_group(
    metrics: Mapping[str, Callable] | Callable,
    y_true,
    y_pred,
    groups,
    overall: bool = True,
) -> pd.DataFrame:
    """Rows: groups (plus ``overall``), columns: metrics, cells: ``fn(y_true_g, y_pred_g)``."""
    if callable(metrics):
        metrics = {getattr(metrics, "__name__", "metric"): metrics}
    check_lengths(y_true=y_true, y_pred=y_pred, groups=groups)
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    codes, names = as_codes(groups, len(y))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    rows = {}
    for g, name in enumerate(names):  # one call per group: user functions are not vectorized
        idx = order[bounds[g] : bounds[g + 1]]
        rows[name] = {m: fn(y[idx], p[idx]) for m, fn in metrics.items()}
    if overall:
        keep = codes >= 0
        rows[OVERALL] = {m: fn(y[keep], p[keep]) for m, fn in metrics.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "group"
    return frame


def _groups_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(index=OVERALL, errors="ignore")


def difference(frame: pd.DataFrame) -> pd.Series:
    """max - min over groups of each metric column (the overall row is ignored)."""
    groups = _groups_only(frame)
    return groups.max() - groups.min()


def ratio(frame: pd.DataFrame) -> pd.Series:
    """min / max over groups of each metric column (NaN where the max is not positive)."""
    groups = _groups_only(frame)
    hi = groups.max()
    return (groups.min() / hi).where(hi > 0)
