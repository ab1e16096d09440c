"""fairmed.metrics: per-group metrics, fairness criteria, calibration, bootstrap intervals and
tests, and the audit (Predictions -> Results). numpy, pandas and scipy only: never torch."""

from fairmed.metrics.audit import AuditResult, AuditWarning, SmallGroupWarning, TwoClassWarning, audit
from fairmed.metrics.calibration import ece, reliability_table
from fairmed.metrics.criteria import (
    GAP_FORMS,
    accuracy_parity_difference,
    demographic_parity_difference,
    eodd,
    eopp0,
    eopp1,
    equal_opportunity_difference,
    equalized_odds_difference,
    fate,
    fate_table,
    gap_values,
    multiclass_demographic_parity,
)
from fairmed.metrics.grouped import by_group, difference, ratio
from fairmed.metrics.groups import BINARY_METRICS, binary_metrics, choose_threshold
from fairmed.metrics.slices import SliceResult, find_slices
from fairmed.metrics.stats import compare_runs, compare_table, mann_whitney, paired_test, stars

__all__ = [
    "BINARY_METRICS",
    "GAP_FORMS",
    "AuditResult",
    "AuditWarning",
    "SliceResult",
    "SmallGroupWarning",
    "TwoClassWarning",
    "accuracy_parity_difference",
    "audit",
    "binary_metrics",
    "by_group",
    "choose_threshold",
    "compare_runs",
    "compare_table",
    "demographic_parity_difference",
    "difference",
    "ece",
    "eodd",
    "eopp0",
    "eopp1",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "fate",
    "fate_table",
    "find_slices",
    "gap_values",
    "mann_whitney",
    "multiclass_demographic_parity",
    "paired_test",
    "ratio",
    "reliability_table",
    "stars",
]
