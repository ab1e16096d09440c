"""Metric names and their directions: which binary metrics exist, whether higher is better.

A leaf module (no fairmed imports): the per-group engines (``groups.py``) and the criteria
(``criteria.py``) both read it, so neither needs the other's internals.
"""

from __future__ import annotations

BINARY_METRICS: tuple[str, ...] = (
    "n",
    "prevalence",
    "auc",
    "accuracy",
    "balanced_accuracy",
    "ppv",
    "npv",
    "tpr",
    "tnr",
    "fpr",
    "fnr",
    "f1",
    "selection_rate",
    "bce",
    "ece",
    "brier",
)
# metrics that need scores (probabilities), not only hard decisions
SCORE_METRICS = frozenset({"auc", "bce", "ece", "brier"})

# True: higher is better; False: lower is better; None: neither (a description, not a quality)
DIRECTION: dict[str, bool | None] = {
    "n": None,
    "prevalence": None,
    "selection_rate": None,
    "auc": True,
    "accuracy": True,
    "balanced_accuracy": True,
    "ppv": True,
    "npv": True,
    "tpr": True,
    "tnr": True,
    "f1": True,
    "fpr": False,
    "fnr": False,
    "bce": False,
    "ece": False,
    "brier": False,
    # multi-class
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "auc_ovr": True,
    # regression-style values
    "recon_mse": False,
    "elbo": True,  # the ELBO itself (fairmed.models.vae.evaluate), not the loss -ELBO
    "latent_std": None,
}
# metrics whose range is [0, 1], so that an error rate 1 - m is meaningful for SER
BOUNDED = frozenset(BINARY_METRICS) - {"n", "bce"} | {
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "auc_ovr",
}


def direction(metric: str) -> bool | None:
    """Whether higher values of ``metric`` are better (None: neither), by name or name prefix."""
    if metric in DIRECTION:
        return DIRECTION[metric]
    for name in sorted(DIRECTION, key=len, reverse=True):
        if metric.startswith(name + "_"):
            return DIRECTION[name]
    return None
