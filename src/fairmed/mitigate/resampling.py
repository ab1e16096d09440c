"""GCE-guided up- and down-sampling ("Bias Mitigation for Medical Images").

A detector model is trained with the generalized cross-entropy
``L_GCE(p, y) = (1 - p_y^q) / q`` (Zhang & Sabuncu 2018; a bias detector in Nam et al.
2020): GCE emphasises easy samples, so the samples it fits best (the **lowest** loss)
are the most *bias-aligned*. This module turns the detector's per-sample losses and its
per-subgroup false-positive rates into a new training set:

- **Upsampling**: subgroups (of every chosen attribute) whose FPR exceeds the overall FPR
  qualify. ``up_of="dataset"`` (the paper's section 5: "the data set grows by 20, 25 or 50%"):
  B = round(K x |train|) duplicates in total (|train| = the training rows before any removal),
  split over the qualifying (attribute, subgroup) pairs in proportion to their eligible rows
  (:func:`allocate`: floors, then the largest remainders, ties to the earlier pair), so the
  training set grows by exactly K whenever one subgroup qualifies (by 0 when none does).
  ``up_of="subgroup"``: K of every qualifying subgroup (the sum over attributes can reach several
  times K). Within a subgroup the rows come in ``pick`` order (``lowest`` detector loss first, or
  ``highest``), cycling through the subgroup again if its share exceeds its size.
- **Downsampling**: for every subgroup holding more than ``min_share`` (N) of the data
  whose FPR is below the overall FPR, remove up to ``down_fraction`` (K) of its
  first samples in ``pick`` order. The paper modulates the amount with two sigmoid-like functions
  that it does not state in closed form; fairmed uses (documented in docs/gce.md)

      m_gap(d)   = 1 / (1 + exp(-(d - gap_center) / gap_scale))       d = max FPR - min FPR
      m_share(s) = 1 / (1 + exp(-(s - min_share) / share_scale))       s = subgroup share

  and removes ``round(K * n_group * m_gap(d) * m_share(s))`` samples: both smooth and
  monotone, so wider FPR spreads and larger subgroups lose more (``modulation="none"``:
  round(K * n_group), plain K% downsampling).
- **Down & up**: downsampling first, then upsampling on what remains.

Across several attributes, removals are the union of each attribute's removals and
duplications add up (a sample picked for two attributes appears three times). numpy
only; the detector training itself goes through fairmed's one training loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fairmed.errors import InputError

Mode = Literal["none", "down", "up", "down_up"]

# the plan's decision table: ``n`` counts the whole subgroup (it sets the share), ``n_eligible`` the
# rows a step could pick (for "up" after downsampling removed some), ``n_selected`` = round(K * ...)
# of ``n_eligible``
DECISION_COLUMNS = [
    "attribute",
    "group",
    "step",
    "n",
    "n_eligible",
    "share",
    "fpr",
    "overall_fpr",
    "applies",
    "n_selected",
]


class ResamplingConfig(BaseModel):
    """Knobs of the GCE resampling; defaults are the paper's (K_up 25%, K_down 5%, N 15%).

    ``up_of``: ``dataset`` (the paper's section 5: the training set grows by K) duplicates
    round(K x |train|) rows in total, spread over the qualifying subgroups (module docstring);
    ``subgroup`` duplicates K of every qualifying subgroup of every attribute (the sum can reach
    several times K). ``pick``: which samples are duplicated / removed first, the detector's
    ``lowest`` loss (section 4: the bias-aligned ones) or ``highest`` (section 5's wording).
    ``fpr_from``: the subgroup FPRs from the detector's decisions on the training split, or from
    the baseline classifier on the validation split (given to the planner as ``rates``).
    ``modulation``: ``sigmoid`` (m_gap x m_share, below) or ``none`` (plain K_down downsampling).
    """

    model_config = ConfigDict(extra="forbid")

    mode: Mode = "down_up"
    up_fraction: float = Field(0.25, ge=0.0, le=1.0, description="K for upsampling (paper: 0.20, 0.25, 0.50)")
    down_fraction: float = Field(0.05, ge=0.0, le=1.0, description="K for downsampling (paper: 0.05)")
    min_share: float = Field(0.15, ge=0.0, le=1.0, description="N: only subgroups above this share shrink")
    gap_center: float = Field(0.05, gt=0.0, description="FPR spread at which m_gap = 1/2")
    gap_scale: float = Field(0.02, gt=0.0)
    share_scale: float = Field(0.05, gt=0.0)
    up_of: Literal["dataset", "subgroup"] = Field(
        "dataset", description="K of the whole training set (paper section 5) or of each qualifying subgroup"
    )
    pick: Literal["lowest", "highest"] = Field("lowest", description="detector loss of the rows picked first")
    fpr_from: Literal["detector_train", "baseline_val"] = Field(
        "detector_train", description="subgroup FPRs: detector on train, or baseline classifier on validation"
    )
    modulation: Literal["sigmoid", "none"] = Field(
        "sigmoid", description="downsampling amount: K x m_gap x m_share, or plain K"
    )


def modulation(fpr_spread: float, share: float, config: ResamplingConfig) -> float:
    """m_gap(d) * m_share(s): the fraction of K that a downsampled subgroup loses (1 for ``none``)."""
    if config.modulation == "none":
        return 1.0
    m_gap = 1.0 / (1.0 + np.exp(-(fpr_spread - config.gap_center) / config.gap_scale))
    m_share = 1.0 / (1.0 + np.exp(-(share - config.min_share) / config.share_scale))
    return float(m_gap * m_share)


@dataclass(frozen=True)
class ResamplingPlan:
    """The resampled training set as positions into the original one, and why."""

    positions: np.ndarray  # rows of the new training set (repeats = duplicates)
    removed: np.ndarray  # positions dropped by downsampling
    duplicated: np.ndarray  # positions added by upsampling (with repeats)
    decisions: pd.DataFrame  # DECISION_COLUMNS: attribute, group, step, n, n_eligible, ..., n_selected

    @property
    def size(self) -> int:
        return len(self.positions)


def false_positive_rates(
    y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series
) -> tuple[pd.Series, float]:
    """FPR per subgroup and overall (NaN for a subgroup without negatives)."""
    neg = np.asarray(y_true) == 0
    fp = neg & (np.asarray(y_pred) == 1)
    g = pd.Series(pd.Categorical(groups), index=range(len(neg)))
    per_group = (
        pd.Series(fp).groupby(g, observed=False).sum() / pd.Series(neg).groupby(g, observed=False).sum()
    )
    overall = float(fp.sum() / max(neg.sum(), 1))
    return per_group.astype(float), overall


Rates = Mapping[str, tuple[pd.Series, float]]


def plan_resampling(
    losses: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Mapping[str, pd.Series],
    config: ResamplingConfig,
    rates: Rates | None = None,
) -> ResamplingPlan:
    """Decide which rows to remove and duplicate from the detector's losses and FPRs.

    ``groups`` maps each attribute name to its per-row group labels (NaN rows are in
    no subgroup of that attribute). The detector's decisions ``y_pred`` give the FPRs unless
    ``rates`` gives each attribute's (FPR per subgroup, overall FPR) from elsewhere (the
    baseline classifier on validation, ``fpr_from: baseline_val``).
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if len(values) != n:
            raise InputError(f"{name} has {len(values)} rows, losses {n}")
    if not np.isfinite(losses).all():
        raise InputError(
            f"detector losses are NaN or infinite at rows {np.flatnonzero(~np.isfinite(losses))[:5].tolist()}"
        )
    # stable order of the rows picked first: lowest (or highest) loss, ties by position
    key = losses if config.pick == "lowest" else -losses
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), key))] = np.arange(n)
    removed = np.zeros(n, dtype=bool)
    rows: list[dict] = []
    if config.mode in {"down", "down_up"}:
        for attr, g in groups.items():
            for sub in _subgroups(g, y_true, y_pred, rates, attr, np.zeros(n, bool)):
                chosen = bool(sub["share"] > config.min_share and sub["fpr"] < sub["overall_fpr"])
                amount = (
                    config.down_fraction
                    * len(sub["members"])
                    * modulation(sub["spread"], sub["share"], config)
                )
                k = int(round(amount)) if chosen else 0
                removed[_first(sub["members"], rank, k)] = True
                rows.append(_row(attr, "down", sub, chosen, k))
    extra = np.zeros(n, dtype=np.int64)
    if config.mode in {"up", "down_up"}:
        subs = [
            (attr, sub)
            for attr, g in groups.items()
            for sub in _subgroups(g, y_true, y_pred, rates, attr, removed)
        ]
        chosen = [bool(sub["fpr"] > sub["overall_fpr"]) for _, sub in subs]
        sizes = [len(sub["members"]) if c else 0 for (_, sub), c in zip(subs, chosen)]
        if config.up_of == "dataset":
            counts = allocate(int(round(config.up_fraction * n)), sizes)
        else:
            counts = [int(round(config.up_fraction * m)) for m in sizes]
        for (attr, sub), c, k in zip(subs, chosen, counts):
            np.add.at(extra, _first(sub["members"], rank, k), 1)
            rows.append(_row(attr, "up", sub, c, k))
    keep = np.flatnonzero(~removed)
    duplicated = np.repeat(np.arange(n), extra)
    positions = np.concatenate([keep, duplicated])
    decisions = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    return ResamplingPlan(positions, np.flatnonzero(removed), duplicated, decisions)


def allocate(budget: int, sizes: list[int]) -> list[int]:
    """``budget`` rows split over subgroups in proportion to ``sizes`` (0 = not qualifying): the floors
    of the exact shares, then one more each to the largest remainders (ties to the earlier subgroup).
    The counts add up to ``budget`` exactly whenever some subgroup qualifies."""
    total = sum(sizes)
    if budget <= 0 or total == 0:
        return [0] * len(sizes)
    exact = np.array(sizes, dtype=float) * budget / total
    counts = np.floor(exact).astype(np.int64)
    order = np.lexsort((np.arange(len(sizes)), -(exact - counts)))
    counts[order[: budget - int(counts.sum())]] += 1
    return counts.tolist()


def _first(members: np.ndarray, rank: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` first rows of ``members`` in pick order, cycling through them again when k exceeds them."""
    if not k or not len(members):
        return np.zeros(0, dtype=np.int64)
    ordered = members[np.argsort(rank[members], kind="stable")]
    return ordered[np.arange(k) % len(ordered)]


def _subgroups(groups, y_true, y_pred, rates, attr, excluded) -> list[dict]:
    """Each subgroup of one attribute: its eligible rows (not ``excluded``), size, share and FPRs."""
    n = len(excluded)
    g = pd.Series(pd.Categorical(groups)).reset_index(drop=True)
    if len(g) != n:
        raise InputError(f"attribute {attr!r} has {len(g)} group labels for {n} rows")
    fpr, overall = false_positive_rates(y_true, y_pred, g) if rates is None else rates[attr]
    spread = float(np.nanmax(fpr) - np.nanmin(fpr)) if fpr.notna().any() else 0.0
    counts = g.value_counts(sort=False)
    total = int(g.notna().sum())
    codes = g.cat.codes.to_numpy()
    return [
        {
            "name": name,
            "members": np.flatnonzero((codes == code) & ~excluded),
            "n": int(counts[name]),
            "share": counts[name] / total if total else 0.0,
            "fpr": float(fpr.get(name, np.nan)),
            "overall_fpr": float(overall),
            "spread": spread,
        }
        for code, name in enumerate(g.cat.categories)
    ]


def _row(attr: str, step: str, sub: dict, chosen: bool, k: int) -> dict:
    return {
        "attribute": attr,
        "group": str(sub["name"]),
        "step": step,
        "n": sub["n"],
        "n_eligible": len(sub["members"]),
        "share": float(sub["share"]),
        "fpr": sub["fpr"],
        "overall_fpr": sub["overall_fpr"],
        "applies": chosen,
        "n_selected": k,
    }
