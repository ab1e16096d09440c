"""Multiplicity control: adjusted p-values for a family of tests.

A report tests many attribute x metric x method pairs; a verdict ("significant") must come from
p-values adjusted over that family. Holm (1979) controls the family-wise error rate under any
dependence; Benjamini-Hochberg (1995) controls the false-discovery rate (independent or positively
dependent tests). Both return adjusted p-values, so "significant" is ``p_adjusted <= alpha`` and
``p_adjusted >= p_value`` always holds. NaN p-values are not part of the family and stay NaN.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Adjustment = Literal["holm", "bh", "none"]
ADJUSTMENTS: tuple[str, ...] = ("holm", "bh", "none")


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values: the k-th smallest of m is max_{j<=k} min(1, (m-j+1) p_(j))."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order] * (m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked))
    values = np.empty(m)
    values[order] = adjusted
    out[ok] = values
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values: min_{j>=k} min(1, m p_(j) / j)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    values = np.empty(m)
    values[order] = adjusted
    out[ok] = values
    return out


def adjust_pvalues(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values over one family (``holm``, ``bh`` or ``none``); NaN entries stay NaN."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"unknown p-value adjustment {method!r}: expected one of {', '.join(ADJUSTMENTS)}")
