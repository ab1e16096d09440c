"""fairmed.report: figures and one self-contained HTML report per study or audit folder.

``build_report(out_dir)`` is the entry point; ``fairmed.report.style`` gives the figure style and
``fairmed.report.sections`` the registry where study kinds add their own sections.
"""

from __future__ import annotations

from fairmed.report.context import ReportContext, load_context
from fairmed.report.sections import Section, register_section

__all__ = ["ReportContext", "Section", "build_report", "load_context", "register_section"]


def __getattr__(name: str):
    if name == "build_report":
        from fairmed.report.build import build_report

        return build_report
    raise AttributeError(f"module 'fairmed.report' has no attribute {name!r}")
