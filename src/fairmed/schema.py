"""Column names of the two tables everything meets at: Predictions and Results.

Predictions: one row per (run, sample): the run keys, ``id``, ``y_true``, and
``y_score`` (binary: probability of the positive class) or ``p_0 .. p_{C-1}``
(multi-class probabilities), optional ``y_pred``, or for generative models the
per-sample values (``recon_mse``, ``latent_std``, ``elbo``); plus the sensitive
attributes. Results: run keys, ``attribute``, ``group``, ``metric``, ``value``,
``ci_low``, ``ci_high``, ``n``, ``mdg`` (the minimum detectable gap, on difference rows).
"""

from __future__ import annotations

RUN_KEYS: tuple[str, ...] = ("study", "config", "method", "seed", "split")
ID = "id"
Y_TRUE = "y_true"
Y_SCORE = "y_score"
Y_PRED = "y_pred"
PROBA_PREFIX = "p_"
REGRESSION_VALUES: tuple[str, ...] = ("recon_mse", "latent_std", "elbo")
RESULT_COLUMNS: tuple[str, ...] = ("attribute", "group", "metric", "value", "ci_low", "ci_high", "n", "mdg")
OVERALL = "overall"  # the ``group`` (and ``attribute``) of whole-population rows


def proba_column(k: int) -> str:
    return f"{PROBA_PREFIX}{k}"


def run_keys_in(columns) -> list[str]:
    """The run-key columns present in a table, in canonical order."""
    cols = set(columns)
    return [k for k in RUN_KEYS if k in cols]
