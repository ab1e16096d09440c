"""Representation sweeps: one training-set design per share of a group (F0M100 ... F100M0).

A sweep fixes everything but the share of one group along one dimension (the share of
women among the cases, of dark skin, of older patients) and asks the LP designer for the
largest set at each share. ``paper_ratios`` gives the constraints of the ISIC sex-ratio
study: as many benign as malignant cases, the share within each class, and as many
patients under 60 as over 60 within each sex and class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import pandas as pd

from fairmed.design.composition import (
    COUNT,
    Bound,
    Composition,
    Ratio,
    Term,
    design_composition,
)
from fairmed.errors import SpecError


def share_ratio(
    dimension: str,
    group: str,
    share: float,
    others: Sequence[str] | None = None,
    within: Sequence[str] = (),
) -> Ratio:
    """``group : others = share : (1 - share)`` along ``dimension``; without ``others``,
    ``group : all cells = share : 1`` (the same when the dimension has two values)."""
    if not 0.0 <= share <= 1.0:
        raise SpecError(f"share of {group!r} must be in [0, 1], got {share}")
    frac = Fraction(share).limit_denominator(10_000)
    p, q = frac.numerator, frac.denominator
    return Ratio(
        numerator={dimension: group},
        denominator={dimension: list(others)} if others is not None else {},
        ratio=(p, q - p) if others is not None else (p, q),
        within=list(within),
        name=f"{group} share {share:.4g}",
    )


def composition_name(shares: Mapping[str, float]) -> str:
    """``{"female": .25, "male": .75}`` -> ``"F25M75"``; groups with share 0 are left out (``M100``)."""
    initials = [str(g)[:1].upper() for g in shares]
    use_initials = len(set(initials)) == len(initials)
    parts = []
    for (group, share), initial in zip(shares.items(), initials):
        pct = round(100 * share, 2)
        if pct > 0:
            parts.append(f"{initial if use_initials else group}{pct:g}")
    return "".join(parts)


def paper_ratios(
    label: str = "malignant",
    positive: str = "malignant",
    negative: str = "benign",
    sex: str = "sex",
    age: str | None = "age",
    age_bins: tuple[str, str] = ("<60", ">=60"),
) -> list[Ratio]:
    """The fixed constraints of the sex-ratio study: classes 1:1; age bands 1:1 within sex and class."""
    ratios = [
        Ratio(numerator={label: positive}, denominator={label: negative}, name=f"{positive} = {negative}")
    ]
    if age is not None:
        ratios.append(
            Ratio(
                numerator={age: age_bins[0]},
                denominator={age: age_bins[1]},
                within=[label, sex],
                name=f"{age_bins[0]} = {age_bins[1]}",
            )
        )
    return ratios


def representation_sweep(
    cells: pd.DataFrame,
    dimension: str,
    group: str,
    shares: Sequence[float],
    *,
    others: Sequence[str] | None = None,
    within: Sequence[str] = (),
    ratios: Sequence[Ratio | Mapping] = (),
    bounds: Sequence[Bound | Mapping] = (),
    objective: Sequence[Term | Mapping] | None = None,
    names: Sequence[str] | None = None,
    integer: bool = False,
    label: str | None = None,
) -> dict[str, Composition]:
    """One :class:`Composition` per share of ``group``, keyed by name (``F25M75`` or ``names``)."""
    if names is not None and len(names) != len(shares):
        raise SpecError(f"representation sweep: {len(names)} names for {len(shares)} shares")
    values = [str(v) for v in pd.unique(cells[dimension].astype(str))] if dimension in cells else []
    if group not in values:
        raise SpecError(f"representation sweep: {dimension} has no value {group!r} (values: {values})")
    rest = list(others) if others is not None else [v for v in values if v != group]
    designs: dict[str, Composition] = {}
    for i, share in enumerate(shares):
        name = names[i] if names is not None else composition_name({group: share, "/".join(rest): 1 - share})
        if name in designs:
            raise SpecError(f"representation sweep: two designs are named {name!r}")
        constraints = [*ratios, share_ratio(dimension, group, share, rest, within)]
        designs[name] = design_composition(
            cells, constraints, bounds, objective, integer=integer, label=label
        )
    return designs


def sweep_table(designs: Mapping[str, Composition], by: Sequence[str], value: str = COUNT) -> pd.DataFrame:
    """One row per design, one column per margin (``by=["malignant", "sex"]``) plus ``total``: Table 1."""
    frames = {name: d.margins(by, value) for name, d in designs.items()}
    table = pd.DataFrame(frames).T.fillna(0)
    if len(by) > 1:
        table.columns = [" ".join(map(str, c)) for c in table.columns]
    table = table.astype("int64")
    table["total"] = table.sum(axis=1)
    table.index.name = "composition"
    return table


__all__ = ["composition_name", "paper_ratios", "representation_sweep", "share_ratio", "sweep_table"]
