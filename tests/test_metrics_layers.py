"""The criteria are a leaf: functions of per-group rates that the engines import, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import fairmed.metrics.criteria as criteria


def _fairmed_imports(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fairmed"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fairmed"))
    return found


def test_criteria_import_no_engine():
    assert _fairmed_imports(criteria) <= {"fairmed.metrics.names", "fairmed.schema"}
