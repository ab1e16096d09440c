"""The strategy interface, the registry of strategies by name, and the group (x label) cells.

A strategy is an ``nn.Module`` (its extra heads join the optimizer) that the one loop
(:mod:`fairmed.train.loop`) consults at four points:

- ``loss(z, logits, y, g, w)``: the scalar loss of a mini-batch from the shared features ``z``,
  the task logits, labels, group codes (-1: no group) and per-sample weights;
- ``loss_weights`` / ``sampling_probs``: per-sample loss weights, or probabilities to draw each
  epoch's rows (``spec.balance`` adds cell balancing to any strategy);
- ``train_step(stepper, idx)``: one optimizer step (default: one forward, backward and update;
  SAM/GSAM take two passes, LAFTR adds adversary steps, SWAD averages after each step);
- ``attach(model)`` before training (DomainInd replaces the task head), ``end_epoch`` after each
  validation (SWA, SWAD, ODR's schedule) and ``final_state`` at the end (a weight average that
  replaces the selected state).

Adding a strategy is one module: a subclass decorated with ``@register("name")``, plus the name
in ``StrategyName`` and its settings in :class:`~fairmed.train.config.StrategySpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fairmed.errors import SpecError
from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData
from fairmed.train.strategies.losses import Task, weighted_mean

if TYPE_CHECKING:
    from fairmed.train.loop import Stepper


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


@contextmanager
def frozen_bn(model: nn.Module) -> Iterator[None]:
    """Batch-norm layers keep their running statistics (momentum 0) inside the block."""
    saved = {m: m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    for m in saved:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in saved.items():
            m.momentum = momentum


class Strategy(nn.Module):
    """ERM, and the interface every strategy implements (an ``nn.Module`` for its extra heads)."""

    balance: str | None = None  # a class's own balancing (reweight / resample); else spec.balance

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__()
        self.spec = spec
        self.task = task
        self.feature_dim = feature_dim
        self.n_groups = train.n_groups
        if self.balance is None:
            self.balance = spec.balance

    # ---------------------------------------------------------------- data
    def loss_weights(self, train: TensorData) -> Tensor | None:
        """Per-sample weights of the loss over the training rows (None: uniform)."""
        if self.balance == "reweight":
            return self._balancing(train)
        return train.weight if self.balance == "none" else None

    def sampling_probs(self, train: TensorData) -> Tensor | None:
        """Probabilities to draw each epoch's rows with replacement (None: a permutation)."""
        if self.balance != "resample":
            return None
        w = self._balancing(train)
        return w / w.sum()

    def _balancing(self, train: TensorData) -> Tensor:
        return balancing_weights(
            self._cells(train).cpu(), None if train.weight is None else train.weight.cpu()
        )

    # ---------------------------------------------------------------- loss
    def task_loss(self, logits: Tensor, y: Tensor, w: Tensor | None) -> Tensor:
        """The (weighted) mean per-sample task loss."""
        return weighted_mean(self.task.per_sample(logits, y), w)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        """The scalar loss of one mini-batch (``w``: per-sample weights or None)."""
        return self.task_loss(logits, y, w)

    # --------------------------------------------------------------- hooks
    def attach(self, model: nn.Module) -> None:
        """Adapt the model before training (idempotent); most strategies leave it alone."""

    def train_step(self, stepper: Stepper, idx: Tensor) -> Tensor:
        """One optimizer step on rows ``idx``; returns the (detached) batch loss."""
        batch = stepper.batch(idx)
        stepper.opt.zero_grad(set_to_none=True)
        loss = stepper.batch_loss(batch)
        stepper.backward(loss)
        stepper.update()
        return loss.detach()

    def end_epoch(self, epoch: int, stepper: Stepper, scores: dict[str, float]) -> None:
        """After epoch ``epoch`` (1-based) and its validation ``scores``."""

    def final_state(self, stepper: Stepper) -> dict[str, Tensor] | None:
        """A model state that replaces the selected one at the end (weight averaging), or None."""
        return None

    # ------------------------------------------------------------- helpers
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


REGISTRY: dict[str, type[Strategy]] = {}


def register(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: the strategy's name in specs (also listed in ``StrategyName``)."""

    def add(cls: type[Strategy]) -> type[Strategy]:
        REGISTRY[name] = cls
        return cls

    return add


def make_strategy(spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> Strategy:
    """The strategy named by ``spec`` for a model with ``feature_dim`` shared features."""
    return REGISTRY[spec.name](spec, task, feature_dim, train)
