"""Robust optimisation family: the worst group's loss, or the worst loss near the weights.

- ``groupdro``: online group distributionally robust optimisation (Sagawa et al. 2020,
  Algorithm 1): group weights ``q <- q * exp(eta * (l_g + C / sqrt(n_g)))``, normalised, then
  the loss ``sum_g q_g l_g`` with ``l_g`` the batch mean loss of cell ``g`` (0 when absent).
- ``sam``: sharpness-aware minimisation (Foret et al. 2021, ICLR), in its adaptive form
  (ASAM, Kwon et al. 2021) by default as MEDFAIR (``sam_rho`` 2, ``sam_adaptive``): the
  gradient is taken at ``w + e``, ``e = rho T^2 g / ||T g||`` (``T = |w|`` adaptive, else 1).
- ``gsam``: surrogate-gap guided SAM (Zhuang et al. 2022, ICLR): the SAM gradient ``g_p`` minus
  ``gsam_alpha`` times the part of the plain gradient ``g`` orthogonal to it.

SAM and GSAM take two forward-backward passes per step (the second with batch-norm running
statistics frozen) and combine with any loss: they are the ERM loss here, and
``balance: resample`` gives group-balanced batches. With float16 mixed precision the ascent
gradient is unscaled by hand (a step whose first gradient overflows is taken without ascent).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData
from fairmed.train.strategies.base import Strategy, cell_codes, frozen_bn, register
from fairmed.train.strategies.losses import Task

Grads = list[Tensor | None]


@register("groupdro")
class GroupDRO(Strategy):
    """Online GroupDRO (Sagawa et al. 2020, Alg. 1) over group (x label) cells; ``q`` is a buffer."""

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        cells = self._cells(train).cpu()
        full = int(cells.max()) + 1
        counts = torch.bincount(cells, minlength=full)
        present = torch.nonzero(counts).flatten()
        lookup = torch.full((full + 1,), -1, dtype=torch.long)
        lookup[present] = torch.arange(len(present))
        self.register_buffer("lookup", lookup)
        self.register_buffer("counts", counts[present].float())
        self.register_buffer("q", torch.full((len(present),), 1.0 / len(present)))

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        per = self.task.per_sample(logits, y)
        cells = cell_codes(y, g, self.n_groups, self.task.n_classes, self.spec.by_label)
        idx = self.lookup[cells.clamp(max=len(self.lookup) - 1)]
        return self.robust_loss(per, idx, w)

    def robust_loss(self, per: Tensor, idx: Tensor, w: Tensor | None = None) -> Tensor:
        """One Sagawa step: per-cell mean losses, update ``q`` (training only), return ``q . l``."""
        k = len(self.q)
        known = idx >= 0  # a cell never seen in training (val rows only) carries no weight
        weight = known.float() if w is None else w * known
        sums = torch.zeros(k, device=per.device).index_add(0, idx.clamp(min=0), per * weight)
        mass = torch.zeros(k, device=per.device).index_add(0, idx.clamp(min=0), weight)
        group_loss = sums / torch.where(mass > 0, mass, torch.ones_like(mass))
        if self.training:
            adjusted = group_loss.detach() + self.spec.dro_adjust / self.counts.sqrt()
            q = self.q * torch.exp(self.spec.dro_eta * adjusted)
            self.q.copy_(q / q.sum())
        return (self.q * group_loss).sum()


def _norm(tensors: list[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def sam_perturbation(params: list[Tensor], grads: Grads, rho: float, adaptive: bool) -> Grads:
    """``e = rho T^2 g / ||T g||`` (``T = |w|`` when adaptive, else the identity), per parameter."""
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    if not pairs:
        return [None] * len(params)
    norm = _norm([(p.abs() * g if adaptive else g) for p, g in pairs])
    scale = rho / (norm + 1e-12)
    return [None if g is None else (p * p if adaptive else 1.0) * g * scale for p, g in zip(params, grads)]


def gsam_direction(plain: Grads, perturbed: Grads, alpha: float) -> Grads:
    """``g_p - alpha g_perp``: ``g_perp`` is the plain gradient's component orthogonal to ``g_p``."""
    pairs = [(a, b) for a, b in zip(plain, perturbed) if a is not None and b is not None]
    if not pairs:
        return list(perturbed)
    dot = sum((a * b).sum() for a, b in pairs)
    sq = sum((b * b).sum() for _, b in pairs)
    coef = dot / (sq + 1e-12)
    return [b if a is None or b is None else b - alpha * (a - coef * b) for a, b in zip(plain, perturbed)]


@register("sam")
class SAM(Strategy):
    """SAM (Foret et al. 2021; adaptive: Kwon et al. 2021): descend the loss at ``w + e(w)``."""

    def perturbation(self, params: list[Tensor], grads: Grads) -> Grads:
        return sam_perturbation(params, grads, self.spec.sam_rho, self.spec.sam_adaptive)

    def direction(self, plain: Grads, perturbed: Grads) -> Grads:
        """The update direction from the gradients at ``w`` and ``w + e`` (SAM: the latter)."""
        return perturbed

    def train_step(self, stepper, idx: Tensor) -> Tensor:
        batch, params = stepper.batch(idx), stepper.params
        stepper.opt.zero_grad(set_to_none=True)
        loss = stepper.batch_loss(batch)
        plain = stepper.gradients(loss)
        with torch.no_grad():
            e = self.perturbation(params, plain) if plain is not None else [None] * len(params)
            for p, ei in zip(params, e):
                if ei is not None:
                    p.add_(ei)
        stepper.opt.zero_grad(set_to_none=True)
        with frozen_bn(stepper.model):
            stepper.backward(stepper.batch_loss(batch))
        with torch.no_grad():
            for p, ei in zip(params, e):
                if ei is not None:
                    p.sub_(ei)
            if plain is not None:
                scale = stepper.grad_scale()
                perturbed = [None if p.grad is None else p.grad / scale for p in params]
                for p, d in zip(params, self.direction(plain, perturbed)):
                    if d is not None:
                        p.grad.copy_(d * scale)
        stepper.update()
        return loss.detach()


@register("gsam")
class GSAM(SAM):
    """GSAM (Zhuang et al. 2022): SAM's ascent (``gsam_rho``, not adaptive) and a surrogate-gap-aware direction."""

    def perturbation(self, params: list[Tensor], grads: Grads) -> Grads:
        return sam_perturbation(params, grads, self.spec.gsam_rho, adaptive=False)

    def direction(self, plain: Grads, perturbed: Grads) -> Grads:
        return gsam_direction(plain, perturbed, self.spec.gsam_alpha)
