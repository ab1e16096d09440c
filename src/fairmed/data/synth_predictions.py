"""Simulated Predictions with a planted failing slice: the ground truth that checks a slice search.

Every row gets a label (prevalence 0.3), attributes (sex, age, fst with some missing values,
site, view, and further noise attributes ``a6``, ``a7``, ...) and a score whose decision
(``score >= 0.5``) has a fixed TPR and FPR; in the planted slice (by default
``sex=female & site=D & view=lateral``: 0.5 x 0.2 x 0.2 = 2% of rows) the FPR is multiplied by
``fpr_factor``. ``fpr_factor=1`` gives null data: no slice differs from the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SITES = ("A", "B", "C", "D", "E")
VIEWS = ("frontal", "lateral", "oblique", "axial", "other")
PLANTED = {"sex": "female", "site": "D", "view": "lateral"}


def planted_slice_predictions(
    n: int = 20_000,
    n_attrs: int = 6,
    fpr: float = 0.1,
    tpr: float = 0.8,
    fpr_factor: float = 2.0,
    seed: int = 0,
) -> pd.DataFrame:
    """``n`` rows of y_true, y_score and ``n_attrs`` (>= 5) attributes; the rows of
    :data:`PLANTED` have their FPR multiplied by ``fpr_factor``; column ``planted`` marks them."""
    if n_attrs < 5:
        raise ValueError(f"n_attrs must be >= 5 (sex, age, fst, site, view), got {n_attrs}")
    rng = np.random.default_rng(seed)
    fst = rng.integers(1, 7, n).astype(float)
    fst[rng.random(n) < 0.05] = np.nan  # not recorded for 5% of rows
    table = {
        "sex": rng.choice(["female", "male"], n),
        "age": rng.integers(18, 91, n),
        "fst": fst,
        "site": rng.choice(SITES, n),
        "view": rng.choice(VIEWS, n),
    }
    for k in range(5, n_attrs):
        table[f"a{k + 1}"] = rng.choice(["p", "q", "r", "s"], n)
    frame = pd.DataFrame(table)
    planted = np.logical_and.reduce([frame[c].to_numpy() == v for c, v in PLANTED.items()])
    y = (rng.random(n) < 0.3).astype(np.int64)
    rate = np.where(y == 1, tpr, np.where(planted, min(1.0, fpr * fpr_factor), fpr))
    flagged = rng.random(n) < rate
    u = rng.random(n)
    score = np.where(flagged, 0.5 + 0.5 * u, 0.5 * u)
    frame.insert(0, "y_score", np.round(score, 4))
    frame.insert(0, "y_true", y)
    frame["planted"] = planted
    return frame
