"""Which GroupSpec produced each Results ``attribute``: needed to draw curves from Predictions,
whose attribute columns hold raw values (fst 1-6), not group names."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fairmed.data.groups import GroupSpec
from fairmed.errors import SpecError
from fairmed.report.context import ReportContext


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


def group_specs(ctx: ReportContext, attributes: list[str]) -> dict[str, GroupSpec]:
    """Attribute name (as in Results) -> the GroupSpec that reproduces its groups on Predictions.

    Declared specs are used first; an attribute with none falls back to its raw values as
    groups. A spec is kept only if its group names match those in Results.
    """
    preds = ctx.predictions
    if preds is None:
        return {}
    specs: dict[str, GroupSpec] = {}
    for item in _declared(ctx):
        spec = _as_spec(item)
        if spec is not None and spec.name in attributes:
            specs.setdefault(spec.name, spec)
    for attribute in attributes:
        if attribute not in specs and attribute in preds.columns:
            specs[attribute] = GroupSpec.categorical(attribute)
    results = ctx.results
    checked: dict[str, GroupSpec] = {}
    for name, spec in specs.items():
        if not set(spec.attributes) <= set(preds.columns):
            continue
        if results is not None:
            expected = set(results.loc[results["attribute"] == name, "group"].astype(str))
            assigned = set(spec.assign(preds.head(20000)).groups.dropna().astype(str))
            if not assigned or not assigned <= expected:
                continue
        checked[name] = spec
    return checked


def assign(predictions: pd.DataFrame, spec: GroupSpec) -> pd.Series:
    """Group name per Predictions row (NaN where dropped or excluded)."""
    return spec.assign(predictions).groups
