"""fairmed: measure and reduce bias in medical-imaging AI.

The public API is small: a :class:`Cohort` (what the data are), a :class:`GroupSpec`
(how attributes become groups), :func:`audit` (Predictions -> Results) and studies.
Importing fairmed does not import torch; only training does.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fairmed.data import Cohort, GroupSpec
from fairmed.errors import DataError, FairmedError, InputError, SpecError

try:
    __version__ = version("fairmed")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"


def __getattr__(name: str):
    # audit lives in fairmed.metrics; import lazily to keep `import fairmed` light
    if name in {"audit", "AuditResult"}:
        import importlib

        return getattr(importlib.import_module("fairmed.metrics.audit"), name)
    raise AttributeError(f"module 'fairmed' has no attribute {name!r}")


__all__ = [
    "AuditResult",
    "Cohort",
    "DataError",
    "FairmedError",
    "GroupSpec",
    "InputError",
    "SpecError",
    "__version__",
    "audit",
]
