"""Learning strategies: what each mini-batch's loss is (and how a step is taken) in the one loop.

One module per family, each strategy registered by name (:func:`base.register`):

- :mod:`.balancing`: ``erm``, ``reweight``, ``resample``;
- :mod:`.adversarial`: ``multitask``, ``adversarial``, ``laftr``, ``cfair``, ``lnl``;
- :mod:`.representation`: ``domainind``, ``end``, ``odr``;
- :mod:`.robust`: ``groupdro``, ``sam``, ``gsam``;
- :mod:`.averaging`: ``swa``, ``swad``.

:mod:`.base` holds the interface (:class:`Strategy`) and the registry, :mod:`.losses` the
per-sample losses (bce, ce, gce). Every strategy works on image backbones and on MLP heads over
embeddings alike; ``strategy.balance`` adds group (x label) balancing to any of them.
"""

from __future__ import annotations

from fairmed.train.config import STRATEGIES
from fairmed.train.strategies.adversarial import (
    LAFTR,
    LNL,
    Adversarial,
    CFair,
    GradientReversal,
    Multitask,
    grad_reverse,
)
from fairmed.train.strategies.averaging import SWA, SWAD, LossValley, RunningMean
from fairmed.train.strategies.balancing import ERM, Resample, Reweight
from fairmed.train.strategies.base import (
    REGISTRY,
    Strategy,
    balancing_weights,
    cell_codes,
    make_strategy,
    register,
)
from fairmed.train.strategies.losses import Task, gce_loss, log_p_true, per_sample_loss, weighted_mean
from fairmed.train.strategies.representation import ODR, DomainInd, EnD, end_regulariser
from fairmed.train.strategies.robust import GSAM, SAM, GroupDRO, gsam_direction, sam_perturbation

if set(REGISTRY) != set(STRATEGIES):  # the spec entry and the module of a strategy come together
    raise RuntimeError(f"strategies registered {sorted(REGISTRY)} != StrategyName {sorted(STRATEGIES)}")

__all__ = [
    "ERM", "GSAM", "LAFTR", "LNL", "ODR", "REGISTRY", "SAM", "SWA", "SWAD", "Adversarial", "CFair",
    "DomainInd", "EnD", "GradientReversal", "GroupDRO", "LossValley", "Multitask", "Resample",
    "Reweight", "RunningMean", "Strategy", "Task", "balancing_weights", "cell_codes",
    "end_regulariser", "gce_loss", "grad_reverse", "gsam_direction", "log_p_true", "make_strategy",
    "per_sample_loss", "register", "sam_perturbation", "weighted_mean",
]  # fmt: skip
