"""The one training loop: every strategy, backbone and fine-tuning run goes through :func:`fit`.

Per epoch: rows in a seeded permutation (or drawn by the strategy's sampling probabilities),
mini-batches gathered by index from in-memory tensors, ``z = model.features(x)``,
``logits = model.head(z)``, ``loss = strategy.loss(z, logits, y, g, w)``, one optimizer step
(Adam or SGD, over the model's and the strategy's parameters; the strategy may take it its own
way: SAM's two passes, LAFTR's adversary steps), mixed precision on CUDA. After
each epoch the validation set is scored; the state with the best selection score (overall AUC,
worst-group AUC, or lowest loss) is kept, written to ``checkpoint_dir`` atomically, and restored
at the end (a weight-averaging strategy's average replaces it: SWA, SWAD); training stops after
``patience`` epochs without improvement. Finally each training
sample's loss under the best state is recorded (the GCE detector's per-sample losses).

Same seed, same data, same thread count -> the same predictions on CPU.
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from fairmed.io import atomic_write
from fairmed.progress import bar
from fairmed.train.config import AmpMode, TrainConfig
from fairmed.train.data import TensorData
from fairmed.train.selection import auc, worst_group_auc
from fairmed.train.strategies import Strategy, Task


@dataclass
class FitResult:
    """What :func:`fit` returns; the model itself is left holding the best state."""

    state: dict[str, Tensor]  # best model state_dict (CPU copies)
    history: pd.DataFrame  # one row per epoch: train_loss, val_loss, val_auc, val_worst_group_auc, score, lr
    best_epoch: int
    best_score: float
    select: str  # the selection rule actually used ("loss" when the val AUC is undefined)
    train_losses: pd.Series  # per-sample loss of each training row under the best state, indexed by id
    strategy_state: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: AmpMode | bool) -> torch.dtype | None:
    """The autocast dtype of mixed precision on ``device``, None when off: the one policy of the loop.

    ``auto`` (or ``True``): CUDA only, bfloat16 where supported, else float16 (with a grad scaler);
    ``on``: the CPU too, in bfloat16; ``off`` (or ``False``): never.
    """
    mode = {True: "auto", False: "off"}.get(amp, amp) if isinstance(amp, bool) else amp
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def autocast_context(device: torch.device, amp: AmpMode | bool):
    """``torch.autocast`` at :func:`amp_dtype`, or a no-op context when mixed precision is off."""
    dtype = amp_dtype(device, amp)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov,
        )
    # fused: one kernel for all parameters instead of ~6 per tensor (a third faster on small CPU models)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.scheduler == "step":
        step = config.step_size or max(1, config.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=0.1)
    return None


def batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    probs: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> list[Tensor]:
    """One epoch of row indices: a permutation, or ``n`` draws with replacement by ``probs``.

    Drawn on the CPU with the seeded generator (the same on any device), moved once per epoch.
    A trailing batch of a single row is dropped (batch norm cannot train on it) unless it is all.
    """
    if probs is None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.multinomial(probs, n, replacement=True, generator=generator)
    parts = list(order.to(device, non_blocking=True).split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts.pop()
    return parts


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: TensorData, batch_size: int = 512, amp: AmpMode | bool = "auto"
) -> Tensor:
    """Logits (n, n_out) of every row in eval mode, as float32 on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    idx_all = torch.arange(len(data), device=data.x.device)
    with autocast_context(device, amp):
        for idx in idx_all.split(batch_size):
            x = data.inputs(idx).to(device, non_blocking=True)
            out.append(model(x).float())
    model.train(was_training)
    if not out:
        return torch.zeros((0, 1))
    return torch.cat(out).cpu()


def _val_scores(task: Task, logits: Tensor, data: TensorData) -> dict[str, float]:
    y = data.y.cpu()
    loss = float(task.per_sample(logits, y).mean()) if len(y) else float("nan")
    probs = task.scores(logits).numpy()
    yn, g = y.numpy(), data.g.cpu().numpy()
    return {
        "val_loss": loss,
        "val_auc": auc(yn, probs),
        "val_worst_group_auc": worst_group_auc(yn, probs, g),
    }


def _normalised(w: Tensor | None) -> Tensor | None:
    if w is None:
        return None
    w = w.float()
    return w / w.mean()


def fit(
    model: nn.Module,
    strategy: Strategy,
    train: TensorData,
    val: TensorData,
    config: TrainConfig,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` with ``strategy`` (see module docstring); ``model`` ends with the best state."""
    start = time.perf_counter()
    threads = torch.get_num_threads()
    run_threads = config.num_threads
    if run_threads is None and not train.is_image and resolve_device(config.device).type == "cpu":
        # MLP heads on embeddings/features: tiny matmuls lose more to thread synchronisation than
        # they gain, and on a busy machine a second thread waiting for its peer costs 5-10x.
        run_threads = 1
    if run_threads:
        torch.set_num_threads(run_threads)
    try:
        return _fit(model, strategy, train, val, config, desc, start)
    finally:
        torch.set_num_threads(threads)


@dataclass
class Batch:
    """One mini-batch: model inputs, labels, group codes and loss weights (or None)."""

    x: Tensor
    y: Tensor
    g: Tensor
    w: Tensor | None


@dataclass
class Stepper:
    """The inner part of the loop: mini-batches of one epoch, each one optimizer step.

    ``build`` moves the model, the strategy and the training tensors to the device once and
    sets up the optimizer; ``epoch()`` runs one pass and returns the mean training loss. The
    strategy takes each step (:meth:`Strategy.train_step`) with ``batch``, ``batch_loss``,
    ``backward`` and ``update``.
    """

    model: nn.Module
    strategy: Strategy
    data: TensorData
    opt: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    batch_size: int
    weights: Tensor | None = None
    probs: Tensor | None = None
    amp: AmpMode = "off"
    augment: str = "none"
    scaler: torch.amp.GradScaler | None = None
    params: list[nn.Parameter] = field(default_factory=list)
    epochs: int = 1

    @classmethod
    def build(cls, model: nn.Module, strategy: Strategy, train: TensorData, config: TrainConfig) -> Stepper:
        device = resolve_device(config.device)
        model.to(device)
        strategy.to(device)
        weights = _normalised(strategy.loss_weights(train))
        params = [p for p in [*model.parameters(), *strategy.parameters()] if p.requires_grad]
        return cls(
            model=model,
            strategy=strategy,
            data=train.to(device),
            opt=_optimizer(params, config),
            params=params,
            epochs=config.epochs,
            generator=torch.Generator().manual_seed(config.seed),
            device=device,
            batch_size=config.batch_size,
            weights=None if weights is None else weights.to(device),
            probs=class_balanced_probs(train)
            if config.sampler == "class_balanced"
            else strategy.sampling_probs(train),
            amp=config.amp,
            augment=config.augment if train.is_image else "none",
            scaler=torch.amp.GradScaler(device.type)
            if amp_dtype(device, config.amp) == torch.float16
            else None,
        )

    def batch(self, idx: Tensor) -> Batch:
        """Rows ``idx`` as model inputs (augmented once: a two-pass strategy reuses them) and targets."""
        data = self.data
        x = data.inputs(idx, self.augment, self.generator)
        w = None if self.weights is None else self.weights[idx]
        return Batch(x, data.y[idx], data.g[idx], w)

    def autocast(self):
        """The loop's mixed-precision context on this device."""
        return autocast_context(self.device, self.amp)

    def batch_loss(self, batch: Batch) -> Tensor:
        """``strategy.loss`` of one forward pass: ``z = features(x)``, ``logits = head(z)``."""
        with self.autocast():
            z = self.model.features(batch.x)
            logits = self.model.head(z)
            return self.strategy.loss(z, logits, batch.y, batch.g, batch.w)

    def backward(self, loss: Tensor) -> None:
        """Accumulate the gradient of ``loss`` (scaled under float16 mixed precision)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def update(self) -> None:
        """One optimizer step on the accumulated gradients."""
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()

    def grad_scale(self) -> float:
        """The factor the accumulated gradients carry (the grad scaler's, else 1)."""
        return float(self.scaler.get_scale()) if self.scaler is not None else 1.0

    def gradients(self, loss: Tensor) -> list[Tensor | None] | None:
        """Backward ``loss`` and return each parameter's true (unscaled) gradient; None on overflow."""
        self.backward(loss)
        scale = self.grad_scale()
        grads = [None if p.grad is None else p.grad.detach() / scale for p in self.params]
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            return None
        return grads

    def step(self, idx: Tensor) -> Tensor:
        """One optimizer step on rows ``idx`` as the strategy takes it; returns the detached batch loss."""
        return self.strategy.train_step(self, idx)

    def epoch(self) -> float:
        self.model.train()
        self.strategy.train()
        losses, sizes = [], []
        for idx in batches(len(self.data), self.batch_size, self.generator, self.probs, self.device):
            losses.append(self.step(idx))
            sizes.append(len(idx))
        if not losses:
            return float("nan")
        size = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        return float((torch.stack(losses).float() * size).sum() / size.sum())  # one sync per epoch


def _fit(model, strategy, train, val, config, desc, start) -> FitResult:
    task = strategy.task
    torch.manual_seed(config.seed)
    strategy.attach(model)
    stepper = Stepper.build(model, strategy, train, config)
    device, opt, use_amp = stepper.device, stepper.opt, stepper.amp
    train_d, val_d = stepper.data, val.to(device)
    sched = _scheduler(opt, config)
    select = config.select
    best_score, best_epoch, best_state, stale = -np.inf, 0, None, 0
    rows = []
    progress = bar(config.epochs, desc)
    for epoch in range(1, config.epochs + 1):
        train_loss = stepper.epoch()
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        strategy.eval()
        scores = _val_scores(task, predict_logits(model, val_d, config.eval_batch_size, use_amp), val_d)
        if epoch == 1 and select not in ("loss", "last") and np.isnan(scores[f"val_{select}"]):
            select = "loss"  # the validation set cannot rank (one class / no group has both)
        strategy.end_epoch(epoch, stepper, scores)
        score = _selection_score(scores, select, epoch)
        rows.append({"epoch": epoch, "train_loss": train_loss, **scores, "score": score, "lr": lr})
        if best_state is None or score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if config.checkpoint_dir is not None:
                _checkpoint(Path(config.checkpoint_dir), best_state, epoch, score, select)
        else:
            stale += 1
        progress.update(1)
        progress.set_postfix(postfix(train_loss, scores, "loss" if select == "last" else select))
        if config.patience and stale >= config.patience:
            break
    progress.close()
    averaged = strategy.final_state(stepper)
    if averaged is not None:  # weight averaging: the average replaces the selected state
        scores = _val_scores(task, predict_logits(model, val_d, config.eval_batch_size, use_amp), val_d)
        best_state, best_epoch = averaged, len(rows)
        best_score = _selection_score(scores, select, best_epoch)
        if config.checkpoint_dir is not None:
            _checkpoint(Path(config.checkpoint_dir), best_state, best_epoch, best_score, select)
    model.load_state_dict(best_state)
    losses = task.per_sample(predict_logits(model, train_d, config.eval_batch_size, use_amp), train.y.cpu())
    return FitResult(
        state=best_state,
        history=pd.DataFrame(rows),
        best_epoch=best_epoch,
        best_score=float(best_score),
        select=select,
        train_losses=pd.Series(losses.numpy(), index=pd.Index(train.ids, name="id"), name="loss"),
        strategy_state={k: v.detach().cpu().clone() for k, v in strategy.state_dict().items()},
        seconds=time.perf_counter() - start,
    )


def _selection_score(scores: dict[str, float], select: str, epoch: int) -> float:
    """What selection maximises: the epoch itself for ``last`` (the final model is kept), else the
    negated validation loss or the validation metric."""
    if select == "last":
        return float(epoch)
    return -scores["val_loss"] if select == "loss" else scores[f"val_{select}"]


def class_balanced_probs(train: TensorData) -> Tensor:
    """Row draw probabilities proportional to 1 / (rows of the row's class): every class is drawn
    equally often in expectation (torch's WeightedRandomSampler with class weights, as the SCP code)."""
    y = train.y.cpu()
    counts = torch.bincount(y.clamp(min=0))
    w = 1.0 / counts[y.clamp(min=0)].to(torch.float64)
    return (w / w.sum()).to(torch.float32)


def postfix(train_loss: float, scores: dict[str, float], select: str) -> dict[str, str]:
    """The progress bar's fields: the training loss and the selection metric under its own name
    (``val_loss`` as the loss itself, not the negated score that selection maximises)."""
    return {"loss": f"{train_loss:.4f}", f"val_{select}": f"{scores[f'val_{select}']:.4f}"}


def _checkpoint(folder: Path, state: dict[str, Tensor], epoch: int, score: float, select: str) -> None:
    payload = {"model": copy.copy(state), "epoch": epoch, "score": score, "select": select}
    atomic_write(folder / "best.pt", lambda p: torch.save(payload, p))
