"""Learning strategies: what each mini-batch's loss is, plugged into the one loop (:mod:`.loop`).

A strategy sees the shared features ``z = model.features(x)``, the task logits
``model.head(z)``, labels, group codes and per-sample weights, and returns the scalar loss;
it may own extra heads (their parameters join the optimizer), per-sample loss weights, or
sampling probabilities for the mini-batches. Every strategy works on image backbones and on
MLP heads over embeddings alike.

- ``erm``: empirical risk minimisation, the mean per-sample loss (Vapnik 1992).
- ``reweight``: per-sample weights ``w_i = M / (K * M_c(i))`` that give every non-empty cell
  ``c`` (group x label, or group) the same total mass ``M / K`` (``M``: total mass, ``K``: number
  of cells) -- the classic reweighing of Kamiran & Calders (2012) toward balanced groups.
- ``resample``: the same cell-balancing, applied by drawing each epoch's ``n`` samples with
  replacement with probability proportional to ``w_i`` (group-balanced mini-batches, as in
  Idrissi et al. 2022 "Simple data balancing..."), the loss left unweighted.
- ``multitask`` ("reinforcing"; Dataset Distribution Impacts Model Fairness: Single vs.
  Multi-task Learning): a second head on the shared features predicts the sensitive group;
  task loss + ``aux_weight`` (1: the two losses weighted equally) x group cross-entropy.
- ``adversarial`` (same paper, after Abbasi-Sureshjani et al. 2020 "Exploring the role of
  the sensitive attribute..."): the group head sits behind a gradient reversal layer
  (Ganin & Lempitsky 2015) with penalty ``adv_lambda`` (default 5): the head learns to predict
  the group while the shared features receive ``-lambda`` times its gradient, unlearning it.
- ``groupdro``: online group distributionally robust optimisation (Sagawa et al. 2020,
  Algorithm 1): group weights ``q <- q * exp(eta * (l_g + C / sqrt(n_g)))``, normalised, then
  the loss ``sum_g q_g l_g`` with ``l_g`` the batch mean loss of cell ``g`` (0 when absent).

Rows without a group (NaN under the GroupSpec, code -1) are always trained. For the cell-based
strategies (reweight, resample, groupdro) they form one extra cell "(no group)" (x label);
the group heads of multitask and adversarial ignore them (no group loss on those rows).
Multitask and adversarial refuse a training set with fewer than two groups unless
``single_group: allow``.

The per-sample loss is pluggable: binary cross-entropy on one logit, softmax cross-entropy,
or the generalized cross-entropy ``(1 - p_y^q) / q`` of Zhang & Sabuncu (2018), which the
GCE resampling study trains its bias detector with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairmed.errors import SpecError
from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData


# ----------------------------------------------------------------- the loss
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


# ------------------------------------------------------- gradient reversal
class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, lam: float) -> Tensor:  # noqa: D102
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return -ctx.lam * grad, None


def grad_reverse(x: Tensor, lam: float = 1.0) -> Tensor:
    """Identity forward; the backward pass multiplies the gradient by ``-lam`` (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, lam)


class GradientReversal(nn.Module):
    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = float(lam)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lam)


# -------------------------------------------------------------------- cells
def cell_codes(y: Tensor, g: Tensor, n_groups: int, n_classes: int, by_label: bool) -> Tensor:
    """Cell index of every row: group (``n_groups`` = no group) times label when ``by_label``."""
    grp = torch.where(g >= 0, g, torch.full_like(g, n_groups))
    return grp * n_classes + y if by_label else grp


def balancing_weights(cells: Tensor, mass: Tensor | None = None) -> Tensor:
    """``w_i = M / (K * M_c(i))``: every non-empty cell gets total mass ``M / K`` exactly."""
    base = torch.ones(len(cells), dtype=torch.float64) if mass is None else mass.double()
    size = int(cells.max()) + 1 if len(cells) else 0
    per_cell = torch.zeros(size, dtype=torch.float64).index_add_(0, cells, base)
    k = int((per_cell > 0).sum())
    w = base.sum() / (k * per_cell[cells])
    return (w * base).float()


def _aux_head(feature_dim: int, n_groups: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(feature_dim, n_groups)
    return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_groups))


# --------------------------------------------------------------- strategies
class Strategy(nn.Module):
    """ERM, and the interface every strategy implements (an ``nn.Module`` for its extra heads)."""

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__()
        self.spec = spec
        self.task = task
        self.feature_dim = feature_dim
        self.n_groups = train.n_groups

    def loss_weights(self, train: TensorData) -> Tensor | None:
        """Per-sample weights of the loss over the training rows (None: uniform)."""
        return train.weight

    def sampling_probs(self, train: TensorData) -> Tensor | None:
        """Probabilities to draw each epoch's rows with replacement (None: a permutation)."""
        return None

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        """The scalar loss of one mini-batch (``w``: per-sample weights or None)."""
        return weighted_mean(self.task.per_sample(logits, y), w)

    def _cells(self, train: TensorData) -> Tensor:
        return cell_codes(train.y, train.g, self.n_groups, self.task.n_classes, self.spec.by_label)

    def _need_groups(self, train: TensorData) -> None:
        if self.spec.single_group == "allow":
            return  # the group head (at least one output) then sees a constant or no target
        if int(torch.unique(train.g[train.g >= 0]).numel()) < 2:
            raise SpecError(
                f"strategy {self.spec.name!r} needs at least two groups in the training set,"
                f" found {list(train.group_names)}"
            )


class ERM(Strategy):
    """Empirical risk minimisation: the (weighted) mean per-sample loss."""


class Reweight(Strategy):
    """Loss weights that equalise the mass of every group (x label) cell (Kamiran & Calders 2012)."""

    def loss_weights(self, train: TensorData) -> Tensor:
        return balancing_weights(
            self._cells(train).cpu(), None if train.weight is None else train.weight.cpu()
        )


class Resample(Strategy):
    """Group (x label)-balanced mini-batches: rows drawn with probability proportional to the balancing weight."""

    def loss_weights(self, train: TensorData) -> None:
        return None

    def sampling_probs(self, train: TensorData) -> Tensor:
        w = balancing_weights(self._cells(train).cpu(), None if train.weight is None else train.weight.cpu())
        return w / w.sum()


class Multitask(Strategy):
    """ "Reinforcing" second head predicting the sensitive group; the two losses weighted equally."""

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)
        self.group_head = _aux_head(feature_dim, max(self.n_groups, 1), spec.aux_hidden)

    def group_input(self, z: Tensor) -> Tensor:
        return z

    def group_loss(self, z: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        known = g >= 0
        logits = self.group_head(self.group_input(z)).float()
        per = F.cross_entropy(logits, g.clamp(min=0), reduction="none") * known
        if w is not None:
            per = per * w
        return per.sum() / known.sum().clamp(min=1)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        task = weighted_mean(self.task.per_sample(logits, y), w)
        return task + self.spec.aux_weight * self.group_loss(z, g, w)


class Adversarial(Multitask):
    """Group head behind a gradient reversal layer (penalty ``adv_lambda``, default 5)."""

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self.reverse = GradientReversal(spec.adv_lambda)

    def group_input(self, z: Tensor) -> Tensor:
        return self.reverse(z)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        task = weighted_mean(self.task.per_sample(logits, y), w)
        return task + self.group_loss(z, g, w)


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


REGISTRY: dict[str, type[Strategy]] = {
    "erm": ERM,
    "reweight": Reweight,
    "resample": Resample,
    "multitask": Multitask,
    "adversarial": Adversarial,
    "groupdro": GroupDRO,
}


def make_strategy(spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> Strategy:
    """The strategy named by ``spec`` for a model with ``feature_dim`` shared features."""
    return REGISTRY[spec.name](spec, task, feature_dim, train)
