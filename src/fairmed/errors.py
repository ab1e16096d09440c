"""User-facing errors: one clear line, caught by the CLI (exit code 2).

Programming errors are never wrapped in these; only problems the user can fix
(bad files, bad columns, bad specs) are.
"""

from __future__ import annotations


class FairmedError(Exception):
    """Base class of every error a user can fix; its message is one line."""


class DataError(FairmedError):
    """A data file, column, row or image is not what was expected."""


class SpecError(FairmedError):
    """A study spec, GroupSpec or option is invalid."""


class InputError(FairmedError):
    """Predictions handed to the audit or post-processing are malformed."""


def first_rows(index_values, limit: int = 5) -> str:
    """Format the first offending rows/ids for an error message."""
    values = list(index_values)
    shown = ", ".join(str(v) for v in values[:limit])
    more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
    return f"{shown}{more}"
