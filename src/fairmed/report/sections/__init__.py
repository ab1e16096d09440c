"""The section registry: study kinds add their own report sections here.

A section function takes the :class:`~fairmed.report.context.ReportContext` and returns a list of
:class:`Section` (empty when it has nothing to show). Register it for a study kind::

    # src/fairmed/report/sections/vae_fairness.py  (one module per study kind)
    from fairmed.report.sections import Section, register_section
    from fairmed.report.style import new_figure

    @register_section("vae_fairness")
    def mse_boxes(ctx):
        table = ctx.tables.get("mse_by_group")        # OUT/tables/mse_by_group.parquet
        if table is None:
            return []
        fig = new_figure(6, 4)
        ax = fig.add_subplot()
        ...                                             # colours: ctx.color(group)
        return [Section("Reconstruction error", intro="...", figures=[ctx.save(fig, "vae_mse")])]

Every module in this package is imported before a study's report is built, so dropping a file
here is all it takes (an audit report imports only modules that name "audit", so that auditing a
CSV never imports torch). The report shows the kind's sections after the common ones, in
registration order.
"""

from __future__ import annotations

import ast
import html
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from fairmed.report.context import ReportContext

SectionFn = Callable[["ReportContext"], list["Section"]]
AUDIT_KIND = "audit"  # the kind of an audit folder (no spec.yaml)

_REGISTRY: dict[str, list[SectionFn]] = {}


@dataclass
class Section:
    """One titled block of the report.

    - ``intro``: plain text (escaped); a blank line starts a new paragraph.
    - ``html``: a trusted HTML fragment placed after the intro (no scripts, no external URLs).
    - ``figures``: PNG paths (as returned by ``ctx.save``), embedded in the page;
      ``captions`` optionally gives one caption per figure.
    - ``tables``: caption -> DataFrame, rendered as HTML tables.
    - ``notes``: short plain-text remarks shown as a list under the section.
    - ``key``: the anchor id (defaults to a slug of the title).
    """

    title: str
    intro: str = ""
    figures: list[Path] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    html: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        self.figures = [Path(f) for f in self.figures]
        if not self.key:
            self.key = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"

    def caption(self, i: int) -> str:
        return self.captions[i] if i < len(self.captions) else ""

    def intro_html(self) -> str:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", self.intro) if p.strip()]
        return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def register_section(kind: str) -> Callable[[SectionFn], SectionFn]:
    """Decorator: add ``fn(ctx) -> list[Section]`` to the report of every study of ``kind``.

    ``kind`` is a study kind name (``spec.yaml``'s ``kind``) or ``"audit"`` for audit folders.
    Registering the same function twice (e.g. a module reloaded) has no effect.
    """

    def decorator(fn: SectionFn) -> SectionFn:
        entries = _REGISTRY.setdefault(kind, [])
        name = f"{fn.__module__}.{fn.__qualname__}"
        names = [f"{f.__module__}.{f.__qualname__}" for f in entries]
        if name in names:
            entries[names.index(name)] = fn  # a reloaded module keeps its place
        else:
            entries.append(fn)
        return fn

    return decorator


def _names_kind(path: Path, kind: str) -> bool:
    """True when the module's source holds ``kind`` as a string literal (e.g. ``KIND = "composition"``)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    return any(isinstance(node, ast.Constant) and node.value == kind for node in ast.walk(tree))


def discover(kind: str | None = None) -> None:
    """Import the section modules so their ``@register_section`` calls run.

    For a study kind (or ``None``) every module is imported. For ``"audit"`` only modules named
    ``audit`` or holding the string ``"audit"`` are: auditing a CSV must not import a study's
    dependencies (torch), which the study modules may pull in.
    """
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        short = info.name.rsplit(".", 1)[-1]
        if short.startswith("_"):
            continue
        path = Path(info.module_finder.path) / f"{short}.py"  # type: ignore[union-attr]
        if kind != AUDIT_KIND or short == kind or _names_kind(path, kind):
            importlib.import_module(info.name)


def registered(kind: str) -> list[SectionFn]:
    """The section functions registered for ``kind``, in registration order."""
    discover(kind)
    return list(_REGISTRY.get(kind, []))


def sections_for(ctx: ReportContext) -> list[Section]:
    """Run the section functions registered for the context's study kind."""
    sections: list[Section] = []
    for fn in registered(ctx.kind):
        sections.extend(fn(ctx) or [])
    return sections


__all__ = ["Section", "SectionFn", "discover", "register_section", "registered", "sections_for"]
