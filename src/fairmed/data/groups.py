"""GroupSpec: how a sensitive attribute becomes named groups, as data rather than code.

A GroupSpec maps the raw values of one attribute (or the intersection of several)
to readable group names ("FST 1-2", "female", "<60", "female & >=60"). Values that
no group claims are *excluded* (e.g. FST 3-4 under the light/dark convention of the
VAE paper); missing values (NaN, -1, "", "unknown") are either dropped or form a
group of their own. Both are counted, so nothing disappears silently.

Specs are plain pydantic models, so they round-trip through YAML study specs, and a
short string form serves the command line: ``sex``, ``fst`` (one group per type),
``fst:12-56``, ``fst:123-456`` (or any partition, ``fst:12-345``), ``age:60`` (bins <60 / >=60), ``age:40,60``, ``sex*age:60``
(intersection); a ``+missing`` suffix (``sex+missing``, ``age:60+missing``) keeps missing
values as a group of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairmed.errors import SpecError

MISSING_TOKENS = frozenset({"", "unknown", "unk", "nan", "none", "na", "n/a", "-1", "missing"})
MISSING_GROUP = "missing"


def is_missing(values: pd.Series) -> np.ndarray:
    """True where a raw attribute value means "not recorded" (NaN, -1, '', 'unknown', ...)."""
    na = values.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(values.dtype):
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return na | (num == -1)
    text = values.astype("string").str.strip().str.lower()
    return na | text.isin(MISSING_TOKENS).fillna(True).to_numpy(dtype=bool)


class GroupSpec(BaseModel):
    """One grouping of the cohort: an attribute with bins/levels, or an intersection.

    Exactly one of the forms applies:
    - ``levels``: explicit mapping group name -> raw values (categorical or binned codes);
    - ``edges``: numeric cut points; groups "<e0", "e0-e1", ">=ek" (left-closed);
    - neither: every distinct value is its own group (a categorical attribute);
    - ``intersect``: the cartesian product of several GroupSpecs ("female & <60").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str | None = None
    levels: dict[str, list[str | int | float]] | None = None
    edges: list[float] | None = None
    missing: Literal["drop", "group"] = "drop"
    intersect: list[GroupSpec] | None = None
    label: str | None = Field(default=None, description="display name; defaults to the attribute")

    @model_validator(mode="after")
    def _check_form(self) -> GroupSpec:
        if self.intersect is not None:
            if self.attribute is not None or self.levels or self.edges:
                raise SpecError("GroupSpec: 'intersect' cannot be combined with attribute/levels/edges")
            if len(self.intersect) < 2:
                raise SpecError("GroupSpec: 'intersect' needs at least two GroupSpecs")
            return self
        if not self.attribute:
            raise SpecError("GroupSpec: 'attribute' is required (or 'intersect')")
        if self.levels is not None and self.edges is not None:
            raise SpecError(f"GroupSpec {self.attribute}: give 'levels' or 'edges', not both")
        if self.edges is not None and (
            not self.edges
            or not np.isfinite(self.edges).all()
            or any(b <= a for a, b in zip(self.edges, self.edges[1:]))
        ):
            raise SpecError(
                f"GroupSpec {self.attribute}: edges must be finite and strictly increasing, got {self.edges}"
            )
        if self.levels is not None:
            if not self.levels:
                raise SpecError(f"GroupSpec {self.attribute}: 'levels' is empty")
            seen: dict[str, str] = {}
            for name, values in self.levels.items():
                for v in values:
                    key = _norm(v)
                    if key in seen:
                        raise SpecError(
                            f"GroupSpec {self.attribute}: value {v!r} is in both {seen[key]!r} and {name!r}"
                        )
                    seen[key] = name
        return self

    # ------------------------------------------------------------------ names
    @property
    def name(self) -> str:
        """Name of the grouping in Results' ``attribute`` column (e.g. ``fst``, ``sex*age``)."""
        if self.label:
            return self.label
        if self.intersect is not None:
            return "*".join(s.name for s in self.intersect)
        return str(self.attribute)

    @property
    def attributes(self) -> list[str]:
        """Raw cohort columns this spec reads."""
        if self.intersect is not None:
            return [a for s in self.intersect for a in s.attributes]
        return [str(self.attribute)]

    # ---------------------------------------------------------------- presets
    @classmethod
    def categorical(cls, attribute: str, missing: Literal["drop", "group"] = "drop") -> GroupSpec:
        return cls(attribute=attribute, missing=missing)

    @classmethod
    def fitzpatrick(cls, convention: str = "12-56", missing: Literal["drop", "group"] = "drop") -> GroupSpec:
        """Fitzpatrick skin type bins used by the papers.

        - ``"12-56"``: "FST 1-2" (light) vs "FST 5-6" (dark), FST 3-4 excluded (VAE paper);
        - ``"123-456"``: "FST 1-3" vs "FST 4-6" (channel-pruning paper);
        - ``"each"``: one group per type "FST 1" ... "FST 6";
        - any other partition of the types into two or more groups, digits joined within a group
          and groups separated by ``-``: ``"12-345"`` ("FST 1-2" vs "FST 3-5", for a data set
          without type 6 such as PAD-UFES-20), ``"1-2-3-456"``. A type may be in one group only;
          types left out are excluded (and counted), as 3-4 under ``"12-56"``.
        """
        if convention == "each":
            levels = {f"FST {k}": [k] for k in range(1, 7)}
        else:
            levels = {_fst_name(part): [int(d) for d in part] for part in _fst_parts(convention)}
        return cls(attribute="fst", levels=levels, missing=missing)

    @classmethod
    def age_bins(
        cls,
        edges: Sequence[float] = (60,),
        attribute: str = "age",
        missing: Literal["drop", "group"] = "drop",
    ) -> GroupSpec:
        return cls(attribute=attribute, edges=[float(e) for e in edges], missing=missing)

    @classmethod
    def intersection(cls, *specs: GroupSpec) -> GroupSpec:
        return cls(intersect=list(specs))

    @classmethod
    def parse(cls, text: str) -> GroupSpec:
        """Parse the command-line short form.

        ``sex`` (every value its own group), ``fst`` (= ``fst:each``: "FST 1" .. "FST 6"),
        ``fst:12-56``, ``fst:123-456`` or any partition such as ``fst:12-345``, ``age:60`` / ``age:40,60`` (numeric bin edges), and
        ``a*b`` for the intersection of two or more specs. Missing values are dropped (and
        counted) unless the spec ends in ``+missing`` (``sex+missing``, ``fst:12-56+missing``,
        ``age:60+missing``), which keeps them as a group named "missing"; in an intersection
        the suffix applies to the part it ends.
        """
        text = text.strip()
        if not text:
            raise SpecError("empty group spec: expected e.g. 'sex', 'fst:12-56', 'age:60' or 'sex*age:60'")
        if "*" in text:
            return cls.intersection(*(cls.parse(part) for part in text.split("*")))
        body, plus, suffix = text.partition("+")
        if plus and suffix.strip() != MISSING_GROUP:
            raise SpecError(f"group spec {text!r}: the only suffix is '+missing' (e.g. 'sex+missing')")
        missing: Literal["drop", "group"] = "group" if plus else "drop"
        attribute, _, arg = body.partition(":")
        attribute, arg = attribute.strip(), arg.strip()
        if not attribute:
            raise SpecError(f"group spec {text!r}: expected an attribute name before ':' or '+'")
        if attribute == "fst":
            try:
                return cls.fitzpatrick(arg or "each", missing=missing)
            except SpecError as exc:
                raise SpecError(f"group spec {text!r}: {exc}") from None
        if not arg:
            return cls.categorical(attribute, missing=missing)
        try:
            edges = [float(x) for x in arg.split(",")]
        except ValueError:
            raise SpecError(
                f"group spec {text!r}: expected numeric bin edges after ':' (e.g. 'age:60')"
            ) from None
        return cls.age_bins(edges, attribute=attribute, missing=missing)

    # ------------------------------------------------------------- assignment
    def group_names(self) -> list[str] | None:
        """The ordered group names when they are known from the spec alone."""
        if self.intersect is not None:
            parts = [s.group_names() for s in self.intersect]
            if any(p is None for p in parts):
                return None
            names = [""]
            for p in parts:
                names = [f"{a} & {b}" if a else b for a in names for b in p]  # type: ignore[union-attr]
            return names
        if self.levels is not None:
            return list(self.levels)
        if self.edges is not None:
            return _edge_names(self.edges)
        return None

    def assign(self, table: pd.DataFrame) -> GroupAssignment:
        """Map every row of ``table`` to a group name (NaN where dropped or excluded)."""
        if self.intersect is not None:
            return _assign_intersection(self, table)
        col = str(self.attribute)
        if col not in table.columns:
            raise SpecError(
                f"group attribute {col!r} is not a column (available: {', '.join(map(str, table.columns))})"
            )
        raw = table[col]
        missing = is_missing(raw)
        if self.levels is not None:
            lookup = {_norm(v): name for name, values in self.levels.items() for v in values}
            keys = raw.map(_norm)
            groups = keys.map(lookup)
            order = list(self.levels)
        elif self.edges is not None:
            num = pd.to_numeric(raw, errors="coerce")
            bad = ~missing & num.isna().to_numpy()
            if bad.any():
                rows = list(raw.index[bad][:5])
                raise SpecError(
                    f"column {col!r}: non-numeric values at rows {rows} cannot be binned by {self.edges}"
                )
            names = _edge_names(self.edges)
            codes = np.searchsorted(
                np.asarray(self.edges, dtype=float), num.to_numpy(dtype=float), side="right"
            )
            groups = pd.Series(
                np.asarray(names, dtype=object)[np.clip(codes, 0, len(names) - 1)], index=raw.index
            )
            order = names
        else:
            groups = _display_names(raw)
            present = pd.unique(groups[~missing])
            order = sorted(present, key=_natural_key)
        groups = groups.astype(object).where(~missing, other=None)
        excluded = (~missing) & groups.isna().to_numpy()
        if self.missing == "group" and missing.any():
            groups = groups.where(~missing, other=MISSING_GROUP)
            order = [*order, MISSING_GROUP]
        cat = pd.Categorical(groups, categories=order)
        series = pd.Series(cat, index=table.index, name=self.name)
        return GroupAssignment(
            series,
            missing_mask=missing if self.missing == "drop" else np.zeros_like(missing),
            excluded_mask=excluded,
            dropped_missing=self.missing == "drop",
        )


@dataclass(frozen=True)
class GroupAssignment:
    """Per-row group names plus which rows were dropped as missing or excluded."""

    groups: pd.Series
    missing_mask: np.ndarray
    excluded_mask: np.ndarray
    dropped_missing: bool

    @property
    def kept(self) -> np.ndarray:
        return self.groups.notna().to_numpy()

    @property
    def n_missing(self) -> int:
        return int(self.missing_mask.sum())

    @property
    def n_excluded(self) -> int:
        return int(self.excluded_mask.sum())

    def counts(self) -> pd.Series:
        """Rows per group, plus lines for dropped missing and excluded values."""
        counts = self.groups.value_counts(sort=False)
        extra = {}
        if self.dropped_missing and self.n_missing:
            extra["(missing, dropped)"] = self.n_missing
        if self.n_excluded:
            extra["(excluded)"] = self.n_excluded
        if extra:
            counts = pd.concat([counts, pd.Series(extra)])
        counts.name = "n"
        return counts


def _assign_intersection(spec: GroupSpec, table: pd.DataFrame) -> GroupAssignment:
    parts = [s.assign(table) for s in spec.intersect or []]
    kept = np.logical_and.reduce([p.kept for p in parts])
    names = parts[0].groups.astype(object)
    for part in parts[1:]:
        names = names.astype(str) + " & " + part.groups.astype(object).astype(str)
    names = names.where(kept, other=None)
    order = [""]
    for part in parts:
        order = [f"{a} & {b}" if a else str(b) for a in order for b in part.groups.cat.categories]
    present = set(names.dropna())
    missing = np.logical_or.reduce([p.missing_mask & p.dropped_missing for p in parts])
    excluded = ~kept & ~missing
    return GroupAssignment(
        pd.Series(
            pd.Categorical(names, categories=[o for o in order if o in present]),
            index=table.index,
            name=spec.name,
        ),
        missing_mask=missing,
        excluded_mask=excluded,
        dropped_missing=True,
    )


def _norm(value) -> str:
    """Normalise a raw value for level lookup: 2, 2.0 and '2' match; case-insensitive."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip().lower()
    try:
        f = float(text)
        return str(int(f)) if f.is_integer() else repr(f)
    except ValueError:
        return text


def _display_names(raw: pd.Series) -> pd.Series:
    """Group names of a categorical column: text stripped, whole floats without '.0' (1.0 -> "1")."""
    if pd.api.types.is_float_dtype(raw.dtype):
        names = [None if np.isnan(v) else _norm(v) for v in raw.to_numpy(dtype=float, na_value=np.nan)]
        return pd.Series(names, index=raw.index, dtype=object)
    return raw.astype("string").str.strip().astype(object)


def _fst_parts(convention: str) -> list[str]:
    """The groups of a Fitzpatrick partition such as ``12-345``, checked: types 1-6, each in one
    group, increasing within a group, at least two groups."""
    parts = convention.split("-")
    expected = "fst takes 'each' or groups of types 1-6 joined by '-' (e.g. '12-56', '123-456', '12-345')"
    if len(parts) < 2 or any(not p or any(c not in "123456" for c in p) for p in parts):
        raise SpecError(f"fitzpatrick convention {convention!r}: {expected}")
    digits = "".join(parts)
    if len(set(digits)) != len(digits):
        raise SpecError(f"fitzpatrick convention {convention!r}: a type appears in two groups")
    if any(list(p) != sorted(p) for p in parts):
        raise SpecError(
            f"fitzpatrick convention {convention!r}: write the types of a group in increasing order"
        )
    return parts


def _fst_name(part: str) -> str:
    """'12' -> 'FST 1-2', '5' -> 'FST 5', '135' -> 'FST 1,3,5' (a run is written as a range)."""
    types = [int(c) for c in part]
    if len(types) > 1 and types == list(range(types[0], types[-1] + 1)):
        return f"FST {types[0]}-{types[-1]}"
    return "FST " + ",".join(map(str, types))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _edge_names(edges: Sequence[float]) -> list[str]:
    names = [f"<{_fmt(edges[0])}"]
    names += [f"{_fmt(a)}-{_fmt(b)}" for a, b in zip(edges, edges[1:])]
    names.append(f">={_fmt(edges[-1])}")
    return names


def _natural_key(value: str):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def assign_groups(table: pd.DataFrame, specs: Sequence[GroupSpec]) -> pd.DataFrame:
    """One categorical column per spec, named by ``spec.name``."""
    return pd.DataFrame({s.name: s.assign(table).groups for s in specs}, index=table.index)
