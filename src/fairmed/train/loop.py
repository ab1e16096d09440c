"""The one training loop: every strategy, backbone and fine-tuning run goes through :func:`fit`.

Per epoch: rows in a seeded permutation (or drawn by the strategy's sampling probabilities),
mini-batches gathered by index from in-memory tensors, ``z = model.features(x)``,
``logits = model.head(z)``, ``loss = strategy.loss(z, logits, y, g, w)``, one optimizer step
(Adam or SGD, over the model's and the strategy's parameters), mixed precision on CUDA. After
each epoch the validation set is scored; the state with the best selection score (overall AUC,
worst-group AUC, or lowest loss) is kept, written to ``checkpoint_dir`` atomically, and restored
at the end; training stops after ``patience`` epochs without improvement. Finally each training
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
from fairmed.train.config import TrainConfig
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


def _autocast(device: torch.device, enabled: bool):
    if not enabled or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, config: TrainConfig):
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, config.epochs // 3), gamma=0.1)
    return None


def batches(n: int, batch_size: int, generator: torch.Generator, probs: Tensor | None = None) -> list[Tensor]:
    """One epoch of row indices: a permutation, or ``n`` draws with replacement by ``probs``.

    A trailing batch of a single row is dropped (batch norm cannot train on it) unless it is all.
    """
    if probs is None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.multinomial(probs, n, replacement=True, generator=generator)
    parts = list(order.split(batch_size))
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts.pop()
    return parts


@torch.no_grad()
def predict_logits(model: nn.Module, data: TensorData, batch_size: int = 512, amp: bool = True) -> Tensor:
    """Logits (n, n_out) of every row in eval mode, as float32 on the CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    idx_all = torch.arange(len(data), device=data.x.device)
    with _autocast(device, amp):
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
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _fit(model, strategy, train, val, config, desc, start)
    finally:
        torch.set_num_threads(threads)


def _fit(model, strategy, train, val, config, desc, start) -> FitResult:
    task = strategy.task
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    strategy.to(device)
    train_d, val_d = train.to(device), val.to(device)
    weights = _normalised(strategy.loss_weights(train))
    weights = None if weights is None else weights.to(device)
    probs = strategy.sampling_probs(train)
    params = [p for p in [*model.parameters(), *strategy.parameters()] if p.requires_grad]
    opt = _optimizer(params, config)
    sched = _scheduler(opt, config)
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp and not torch.cuda.is_bf16_supported() else None
    augment = config.augment == "flip" and train.is_image

    select = config.select
    best_score, best_epoch, best_state, stale = -np.inf, 0, None, 0
    rows = []
    progress = bar(config.epochs, desc)
    for epoch in range(1, config.epochs + 1):
        model.train()
        strategy.train()
        total = torch.zeros((), device=device)
        seen = 0
        for idx in batches(len(train_d), config.batch_size, generator, probs):
            idx = idx.to(device, non_blocking=True)
            x = train_d.inputs(idx, augment, generator)
            y, g = train_d.y[idx], train_d.g[idx]
            w = None if weights is None else weights[idx]
            with _autocast(device, use_amp):
                z = model.features(x)
                logits = model.head(z)
                loss = strategy.loss(z, logits, y, g, w)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            total += loss.detach().float() * len(idx)
            seen += len(idx)
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        strategy.eval()
        scores = _val_scores(task, predict_logits(model, val_d, config.eval_batch_size, use_amp), val_d)
        if epoch == 1 and select != "loss" and np.isnan(scores[f"val_{select}"]):
            select = "loss"  # the validation set cannot rank (one class / no group has both)
        score = -scores["val_loss"] if select == "loss" else scores[f"val_{select}"]
        train_loss = float(total) / max(seen, 1)
        rows.append({"epoch": epoch, "train_loss": train_loss, **scores, "score": score, "lr": lr})
        if best_state is None or score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if config.checkpoint_dir is not None:
                _checkpoint(Path(config.checkpoint_dir), best_state, epoch, score, select)
        else:
            stale += 1
        progress.update(1)
        progress.set_postfix(loss=f"{train_loss:.4f}", val=f"{score:.4f}")
        if config.patience and stale >= config.patience:
            break
    progress.close()
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


def _checkpoint(folder: Path, state: dict[str, Tensor], epoch: int, score: float, select: str) -> None:
    payload = {"model": copy.copy(state), "epoch": epoch, "score": score, "select": select}
    atomic_write(folder / "best.pt", lambda p: torch.save(payload, p))
