"""Which GroupSpec produced each Results ``attribute``: needed to draw curves from Predictions,
whose attribute columns hold raw values (fst 1-6), not group names."""

from __future__ import annotations

import itertools
import re
from typing import Any, Literal

import pandas as pd

from fairmed.data.groups import MISSING_GROUP, GroupSpec
from fairmed.errors import SpecError
from fairmed.report.context import ReportContext
from fairmed.report.tidy import is_gap_label


def _as_spec(item: Any) -> GroupSpec | None:
    try:
        if isinstance(item, GroupSpec):
            return item
        if isinstance(item, str):
            return GroupSpec.parse(item)
        if isinstance(item, dict):
            return GroupSpec.model_validate(item)
    except (SpecError, ValueError):
        return None
    return None


def _declared(ctx: ReportContext) -> list[Any]:
    """Group specs named in spec.yaml (``groups``, ``audit.attrs``) or audit.json (``attrs``)."""
    found: list[Any] = []
    for holder in (ctx.spec or {}, (ctx.spec or {}).get("audit") or {}, ctx.audit or {}):
        if not isinstance(holder, dict):
            continue
        for key in ("groups", "attrs", "attributes"):
            value = holder.get(key)
            if isinstance(value, str | dict):
                value = [value]
            if isinstance(value, list):
                found.extend(value)
    return found


_EDGE = re.compile(r"^(?:<(?P<lt>-?[\d.]+)|>=(?P<ge>-?[\d.]+)|(?P<a>-?[\d.]+)-(?P<b>-?[\d.]+))$")


def _edges_from_names(names: set[str]) -> list[float] | None:
    """Recover bin edges from group names such as "<60", "60-70", ">=70"."""
    edges: set[float] = set()
    for name in names - {MISSING_GROUP}:
        m = _EDGE.match(name.strip())
        if not m:
            return None
        edges.update(float(v) for v in m.groupdict().values() if v is not None)
    return sorted(edges) or None


def _candidates(attribute: str, names: set[str]) -> list[GroupSpec]:
    """GroupSpecs that could have produced ``names`` for ``attribute`` (when no spec was recorded)."""
    if "*" in attribute:
        parts = attribute.split("*")
        split_names = [
            {n.split(" & ")[i] for n in names if n.count(" & ") == len(parts) - 1} for i in range(len(parts))
        ]
        per_part = [_candidates(p, ns) for p, ns in zip(parts, split_names)]
        return [GroupSpec.intersection(*combo) for combo in itertools.product(*per_part)]
    # a "+missing" grouping shows its missing values as a group of their own
    missing: Literal["drop", "group"] = "group" if MISSING_GROUP in names else "drop"
    out = [GroupSpec.categorical(attribute, missing=missing)]
    if attribute == "fst":
        out += [GroupSpec.fitzpatrick(c, missing=missing) for c in ("12-56", "123-456", "each")]
    edges = _edges_from_names(names)
    if edges:
        out.append(GroupSpec.age_bins(edges, attribute=attribute, missing=missing))
    return out


def group_specs(ctx: ReportContext, attributes: list[str]) -> dict[str, GroupSpec]:
    """Attribute name (as in Results) -> the GroupSpec that reproduces its groups on Predictions.

    Specs declared in spec.yaml / audit.json come first; otherwise the usual forms (raw values,
    the Fitzpatrick conventions, bins read back from names like "<60") are tried. A spec is
    kept only if the groups it assigns are the groups Results report.
    """
    preds = ctx.predictions
    if preds is None:
        return {}
    results = ctx.results
    declared: dict[str, list[GroupSpec]] = {}
    for item in _declared(ctx):
        spec = _as_spec(item)
        if spec is not None:
            declared.setdefault(spec.name, []).append(spec)
    sample = preds.head(50000)
    found: dict[str, GroupSpec] = {}
    for attribute in attributes:
        expected = set()
        if results is not None:
            rows = results[
                (results["attribute"] == attribute) & ~results["group"].astype(str).map(is_gap_label)
            ]
            expected = set(rows["group"].astype(str))
        for spec in [*declared.get(attribute, []), *_candidates(attribute, expected)]:
            if not set(spec.attributes) <= set(sample.columns):
                continue
            assigned = set(spec.assign(sample).groups.dropna().astype(str))
            if assigned and (not expected or assigned <= expected):
                found[attribute] = spec
                break
    return found


def assign(predictions: pd.DataFrame, spec: GroupSpec) -> pd.Series:
    """Group name per Predictions row (NaN where dropped or excluded)."""
    return spec.assign(predictions).groups
