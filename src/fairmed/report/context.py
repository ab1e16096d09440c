"""ReportContext: everything a report section may read from a study or audit folder, loaded once.

A study folder (written by the studies runner) holds ``spec.yaml``, ``versions.json``,
``cohort_summary.parquet``, ``predictions.parquet``, ``results.parquet`` and ``tables/*.parquet``;
an audit folder (``fairmed audit --report DIR``) holds ``predictions.parquet``,
``results.parquet`` and ``audit.json``. Whatever is absent is ``None`` (or empty).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from matplotlib.figure import Figure

from fairmed.errors import DataError
from fairmed.io import read_table
from fairmed.report.sections import AUDIT_KIND
from fairmed.report.style import NEUTRAL_COLOR, colors_by_attribute, save_figure
from fairmed.report.tidy import is_gap_label
from fairmed.schema import OVERALL


@dataclass
class ReportContext:
    """The inputs of one report. Sections read these; they never re-read the folder.

    ``colors`` maps every group name of every attribute to its colour: use it (or
    :meth:`color`) in every figure so a group looks the same everywhere in the report.
    """

    out_dir: Path
    figures_dir: Path
    spec: dict[str, Any] | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    results: pd.DataFrame | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    cohort_summary: pd.DataFrame | None = None
    audit: dict[str, Any] | None = None
    colors: dict[str, str] = field(default_factory=dict)
    tolerance: float = 0.05
    alpha: float = 0.05  # "significant": adjusted p <= alpha

    @property
    def kind(self) -> str:
        """The study kind (``spec["kind"]``), or ``"audit"`` for an audit folder."""
        if self.spec and self.spec.get("kind"):
            return str(self.spec["kind"])
        return AUDIT_KIND

    @property
    def is_study(self) -> bool:
        return self.spec is not None

    @property
    def title(self) -> str:
        if self.spec and self.spec.get("name"):
            return str(self.spec["name"])
        return f"Fairness audit: {self.out_dir.resolve().name}"

    def color(self, group: str) -> str:
        """The report-wide colour of a group (grey for a name never seen)."""
        return self.colors.get(str(group), NEUTRAL_COLOR)

    def save(self, fig: Figure, name: str) -> Path:
        """Save a figure into ``figures_dir`` as PNG + SVG; return the PNG path."""
        return save_figure(fig, self.figures_dir, name)


def _read_optional(path: Path) -> pd.DataFrame | None:
    return read_table(path) if path.exists() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def _read_yaml(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(spec, dict):
        raise DataError(f"{path}: expected a mapping of spec fields, got {type(spec).__name__}")
    return spec


def _groups_by_attribute(results: pd.DataFrame | None, summary: pd.DataFrame | None) -> dict[str, set]:
    found: dict[str, set] = {}
    for frame in (results, summary):
        if frame is None or not {"attribute", "group"} <= set(frame.columns):
            continue
        pairs = frame[["attribute", "group"]].dropna().drop_duplicates()
        for attribute, group in pairs.itertuples(index=False):
            if attribute == OVERALL or str(group).startswith("(") or is_gap_label(group):
                continue
            found.setdefault(str(attribute), set()).add(str(group))
    return found


DEFAULT_TOLERANCE = 0.05


def folder_tolerance(spec: dict | None, audit: dict | None) -> float:
    """The tolerance a folder was made with: a study spec's ``audit.tolerance``, an audit's
    recorded ``tolerance``, else 0.05; so `fairmed report OUT` rebuilds what the run showed."""
    for source in ((spec or {}).get("audit"), audit):
        if isinstance(source, dict) and source.get("tolerance") is not None:
            return float(source["tolerance"])
    return DEFAULT_TOLERANCE


def load_context(
    out_dir: str | Path, tolerance: float | None = None, alpha: float | None = None
) -> ReportContext:
    """Read a study or audit folder into a :class:`ReportContext`.

    ``tolerance`` None: the folder's own (see :func:`folder_tolerance`); ``alpha`` None: the audit's
    recorded ``alpha``, else 0.05. Raises :class:`DataError`
    naming the folder when it holds neither Results nor Predictions.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(f"{out}: report folder not found")
    predictions = _read_optional(out / "predictions.parquet")
    results = _read_optional(out / "results.parquet")
    if predictions is None and results is None:
        raise DataError(
            f"{out}: no results.parquet or predictions.parquet; run a study or "
            "`fairmed audit ... --report DIR` first"
        )
    summary = _read_optional(out / "cohort_summary.parquet")
    tables_dir = out / "tables"
    tables = (
        {p.stem: read_table(p) for p in sorted(tables_dir.glob("*.parquet"))} if tables_dir.is_dir() else {}
    )
    spec, audit = _read_yaml(out / "spec.yaml"), _read_json(out / "audit.json")
    return ReportContext(
        out_dir=out,
        figures_dir=out / "figures",
        spec=spec,
        versions=_read_json(out / "versions.json") or {},
        predictions=predictions,
        results=results,
        tables=tables,
        cohort_summary=summary,
        audit=audit,
        colors=colors_by_attribute(_groups_by_attribute(results, summary)),
        tolerance=folder_tolerance(spec, audit) if tolerance is None else tolerance,
        alpha=float((audit or {}).get("alpha") or 0.05) if alpha is None else alpha,
    )
