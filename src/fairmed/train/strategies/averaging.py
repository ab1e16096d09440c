"""Weight-averaging family: the final model is an average of weights along the trajectory.

- ``swa``: stochastic weight averaging (Izmailov et al. 2018, UAI "Averaging Weights Leads to
  Wider Optima and Better Generalization"); see :class:`SWA`.
- ``swad``: dense stochastic weight averaging over the loss valley (Cha et al. 2021, NeurIPS
  "SWAD: Domain Generalization by Seeking Flat Minima"); see :class:`SWAD`.

Both train with the ERM loss (``balance: resample`` gives MEDFAIR's resamplingSWAD). The
average replaces the state that validation selected (as in MEDFAIR, which tests the averaged
model), after its batch-norm statistics are recomputed over the training set.
"""

from __future__ import annotations

import math
from collections import deque

import torch
from torch import Tensor, nn

from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData
from fairmed.train.strategies.base import Strategy, register
from fairmed.train.strategies.losses import Task


class RunningMean:
    """The equally weighted mean of the snapshots added so far (lists of same-shaped tensors)."""

    def __init__(self) -> None:
        self.mean: list[Tensor] | None = None
        self.n = 0

    @torch.no_grad()
    def add(self, tensors: list[Tensor]) -> None:
        self.n += 1
        if self.mean is None:
            self.mean = [t.detach().float().clone() for t in tensors]
            return
        for m, t in zip(self.mean, tensors):
            m.add_((t.detach().float() - m) / self.n)


def _snapshot(model: nn.Module) -> list[Tensor]:
    return [p.detach().float().clone() for p in model.parameters()]


@torch.no_grad()
def load_average(model: nn.Module, mean: list[Tensor]) -> None:
    """Copy averaged parameters into ``model`` (buffers untouched)."""
    for p, m in zip(model.parameters(), mean):
        p.copy_(m.to(p.dtype))


@torch.no_grad()
def recompute_bn(model: nn.Module, data: TensorData, batch_size: int, autocast) -> None:
    """Batch-norm running statistics re-estimated by one pass over ``data`` (cumulative mean)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = {m: m.momentum for m in bns}
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # None: the exact average over all batches
    was_training = model.training
    model.train()
    with autocast():
        for idx in torch.arange(len(data), device=data.x.device).split(batch_size):
            if len(idx) > 1:
                model(data.inputs(idx))
    for m, momentum in saved.items():
        m.momentum = momentum
    model.train(was_training)


def _final(model: nn.Module, mean: list[Tensor], stepper) -> dict[str, Tensor]:
    load_average(model, mean)
    recompute_bn(model, stepper.data, stepper.batch_size, stepper.autocast)
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@register("swa")
class SWA(Strategy):
    """SWA (Izmailov et al. 2018): the mean of the weights at the end of epochs ``swa_start`` onward.

    From epoch ``swa_start`` (MEDFAIR: 7; the last epoch when the run is shorter) the weights are
    added to an equal-weight running mean after each epoch, and the learning rate is annealed
    (cosine, over ``swa_anneal_epochs``) to the constant ``swa_lr`` (as torch's ``SWALR``).
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self.average = RunningMean()
        self._lr0: list[float] | None = None

    def start(self, epochs: int) -> int:
        return min(self.spec.swa_start, epochs)

    def end_epoch(self, epoch: int, stepper, scores: dict[str, float]) -> None:
        start = self.start(stepper.epochs)
        if epoch < start:
            return
        self.average.add(_snapshot(stepper.model))
        groups = stepper.opt.param_groups
        if self._lr0 is None:
            self._lr0 = [g["lr"] for g in groups]
        t = min(1.0, (epoch - start + 1) / self.spec.swa_anneal_epochs)
        blend = (1.0 - math.cos(math.pi * t)) / 2.0
        for g, lr0 in zip(groups, self._lr0):
            g["lr"] = self.spec.swa_lr * blend + lr0 * (1.0 - blend)

    def final_state(self, stepper) -> dict[str, Tensor] | None:
        if self.average.mean is None:
            return None
        return _final(stepper.model, self.average.mean, stepper)


class LossValley:
    """SWAD's choice of segments to average (Cha et al. 2021), from each segment's validation metric.

    Converged when, of the last ``n_converge`` segments, the oldest has the lowest metric (it
    stopped falling): the threshold is their mean metric x (1 + ``ratio``), and averaging starts
    at that oldest segment. A segment is then added once the lowest metric of it and the next
    ``n_tolerance - 1`` segments is within the threshold; when it is not, the valley is over and
    later segments are ignored. At the end the remaining segments are added while the lowest
    metric of what is left is within the threshold. Not converged: the last segment alone.
    """

    def __init__(self, n_converge: int, n_tolerance: int, ratio: float) -> None:
        self.n_converge, self.n_tolerance, self.ratio = n_converge, n_tolerance, ratio
        self.window: deque[tuple[list[Tensor], float]] = deque(maxlen=n_converge)
        self.pending: deque[tuple[list[Tensor], float]] = deque()
        self.average = RunningMean()
        self.threshold: float | None = None
        self.dead = False
        self.last: list[Tensor] | None = None

    def update(self, segment: list[Tensor], metric: float) -> None:
        self.last = segment
        if self.dead:
            return
        if self.threshold is None:
            self.window.append((segment, metric))
            metrics = [m for _, m in self.window]
            if len(metrics) == self.n_converge and min(range(len(metrics)), key=metrics.__getitem__) == 0:
                self.threshold = sum(metrics) / len(metrics) * (1.0 + self.ratio)
                self.pending.extend(self.window)
                self.window.clear()
                self._drain(final=False)
            return
        self.pending.append((segment, metric))
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        while self.pending and (final or len(self.pending) >= self.n_tolerance):
            ahead = [m for _, m in list(self.pending)[: self.n_tolerance]]
            if min(ahead) > self.threshold:
                if not final:
                    self.dead = True
                    self.pending.clear()
                return
            self.average.add(self.pending.popleft()[0])

    def result(self) -> list[Tensor] | None:
        """The averaged segments' mean (or the last segment when never converged)."""
        if self.threshold is None:
            return self.last
        if not self.dead:
            self._drain(final=True)
        return self.average.mean if self.average.mean is not None else self.last


@register("swad")
class SWAD(Strategy):
    """SWAD (Cha et al. 2021): dense averaging of every step's weights over the validation loss valley.

    Each epoch is a segment: the mean of the weights after each of its optimizer steps. Its
    validation metric (``swad_metric``: the loss as in the paper, or MEDFAIR's 1 - worst-group
    AUC) decides which segments enter the average (:class:`LossValley` with ``swad_n_converge``,
    ``swad_n_tolerance``, ``swad_tolerance_ratio``; MEDFAIR: 3, 6, 0.05). Training runs all epochs.
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self.segment = RunningMean()
        self.valley = LossValley(spec.swad_n_converge, spec.swad_n_tolerance, spec.swad_tolerance_ratio)

    def train_step(self, stepper, idx: Tensor) -> Tensor:
        loss = super().train_step(stepper, idx)
        if not self.valley.dead:
            self.segment.add(list(stepper.model.parameters()))
        return loss

    def metric(self, scores: dict[str, float]) -> float:
        if self.spec.swad_metric == "worst_group_auc" and not math.isnan(scores["val_worst_group_auc"]):
            return 1.0 - scores["val_worst_group_auc"]
        return scores["val_loss"]

    def end_epoch(self, epoch: int, stepper, scores: dict[str, float]) -> None:
        if self.segment.mean is not None:
            self.valley.update(self.segment.mean, self.metric(scores))
        self.segment = RunningMean()

    def final_state(self, stepper) -> dict[str, Tensor] | None:
        mean = self.valley.result()
        return None if mean is None else _final(stepper.model, mean, stepper)
