"""The per-sample losses every strategy builds on: binary / softmax cross-entropy and GCE.

:class:`Task` fixes the number of logits (one for a binary bce/gce task, else one per class) and
the per-sample loss; the generalized cross-entropy ``(1 - p_y^q) / q`` of Zhang & Sabuncu (2018)
is what the GCE resampling study trains its bias detector with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from fairmed.errors import SpecError
from fairmed.train.config import StrategySpec


@dataclass(frozen=True)
class Task:
    """Number of classes and the per-sample loss; fixes the number of logits."""

    n_classes: int
    loss: str = "bce"  # resolved: bce | ce | gce
    gce_q: float = 0.7

    @classmethod
    def resolve(cls, n_classes: int, spec: StrategySpec) -> Task:
        loss = spec.loss
        if loss == "auto":
            loss = "bce" if n_classes == 2 else "ce"
        if loss == "bce" and n_classes != 2:
            raise SpecError(f"strategy.loss 'bce' needs a binary label, this one has {n_classes} classes")
        return cls(n_classes=n_classes, loss=loss, gce_q=spec.gce_q)

    @property
    def n_out(self) -> int:
        """One logit for binary bce/gce, else one per class."""
        return 1 if self.n_classes == 2 and self.loss in ("bce", "gce") else self.n_classes

    def per_sample(self, logits: Tensor, y: Tensor) -> Tensor:
        return per_sample_loss(logits, y, self.loss, self.gce_q)

    def scores(self, logits: Tensor) -> Tensor:
        """Probabilities: (n,) of the positive class for one logit, else (n, C) softmax."""
        logits = logits.float()
        if logits.shape[1] == 1:
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, dim=1)


def log_p_true(logits: Tensor, y: Tensor) -> Tensor:
    """log p(y | x): log-sigmoid of the signed logit (one logit) or log-softmax gathered at y."""
    logits = logits.float()
    if logits.shape[1] == 1:
        sign = y.to(logits.dtype) * 2.0 - 1.0
        return F.logsigmoid(sign * logits[:, 0])
    return torch.log_softmax(logits, dim=1).gather(1, y.view(-1, 1))[:, 0]


def gce_loss(logits: Tensor, y: Tensor, q: float = 0.7) -> Tensor:
    """Generalized cross-entropy ``(1 - p_y^q) / q`` per sample (Zhang & Sabuncu 2018)."""
    return -torch.expm1(q * log_p_true(logits, y)) / q  # expm1: exact as q -> 0 (cross-entropy)


def per_sample_loss(logits: Tensor, y: Tensor, kind: str, q: float = 0.7) -> Tensor:
    """Unreduced loss of each sample: ``bce`` (one logit), ``ce`` (C logits) or ``gce``."""
    if kind == "gce":
        return gce_loss(logits, y, q)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits.float()[:, 0], y.float(), reduction="none")
    return F.cross_entropy(logits.float(), y, reduction="none")


def weighted_mean(values: Tensor, weight: Tensor | None) -> Tensor:
    return values.mean() if weight is None else (values * weight).mean()


def negative_entropy(logits: Tensor) -> Tensor:
    """``mean_i sum_k p_ik log p_ik`` of ``p = softmax(logits)``: minimised, it makes ``p`` uniform."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return (logp.exp() * logp).sum(1).mean()
