"""SNNL-based channel pruning (SCP) for fairness, and the FairPrune baseline on training tensors.

The recipe of "Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis"
(Kong et al., MICCAI 2024):

1. score every output channel of one conv layer (:mod:`fairmed.mitigate.snnl`, default the last
   prunable conv) on the training set; low score = the channel separates the sensitive groups;
2. remove the ``ratio`` (pr_c, default 2 %) of the layer's ORIGINAL channels with the lowest
   scores, structurally (:mod:`fairmed.mitigate.structural`);
3. fine-tune with fairmed's one training loop (:func:`fairmed.train.loop.fit`);
4. evaluate (a caller-given function: the audit lives in ``fairmed.metrics``, which this layer
   may not import) and repeat until the accuracy drop against the unpruned model exceeds
   ``th_acc``, or the fairness criterion improved by less than ``th_fair`` against the previous
   iteration, or ``max_iter`` iterations ran.

The iteration that triggers a stop is recorded but rolled back: the returned model is the last
one that passed both checks (the unpruned model when the first iteration fails). SCP works on
any model, including one FairPrune already pruned (SCP-FairPrune): FairPrune's zeroed weights
stay zero through the slicing and the fine-tuning.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from fairmed.mitigate.fairprune import DEFAULT_STEPS, fairprune
from fairmed.mitigate.snnl import DEFAULT_TEMPERATURE, Distance, score_channels
from fairmed.mitigate.structural import find_site, keep_zeros, prune_channels
from fairmed.train.config import TrainConfig
from fairmed.train.data import TensorData
from fairmed.train.loop import fit, resolve_device
from fairmed.train.strategies import Strategy

Evaluate = Callable[[nn.Module], dict[str, float]]


class SCPConfig(BaseModel):
    """Settings of the SNNL channel-pruning recipe (the paper's pr_c, th_acc, th_fair, T)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer: str | int = Field(-1, description="prunable conv: index into prunable_sites (-1 = last) or name")
    ratio: float = Field(
        0.02, gt=0.0, lt=1.0, description="pr_c: share of the layer's channels per iteration"
    )
    temperature: float = Field(DEFAULT_TEMPERATURE, gt=0.0)
    distance: Distance = Field(
        "sqeuclidean",
        description="SNNL distance: the paper's Eq. 1 (sqeuclidean) or the authors' code (cosine)",
    )
    include_self: bool = Field(
        False, description="count the sample itself in the SNNL numerator (the authors' code; eps 1e-9)"
    )
    th_acc: float = Field(0.05, ge=0.0, description="largest allowed accuracy drop vs the unpruned model")
    th_fair: float = Field(0.0, description="smallest fairness improvement vs the previous iteration")
    max_iter: int = Field(10, ge=1)
    accuracy: str = Field("f1", description="key of the evaluation's accuracy value")
    fairness: str = Field("eodd", description="key of the evaluation's fairness criterion (lower = fairer)")
    score_batch_size: int = Field(128, ge=2)
    seed: int = 0


@dataclass
class PruneResult:
    """The pruned model, one history row per iteration, and the channel scores seen on the way."""

    model: nn.Module
    history: pd.DataFrame  # iteration, channels, removed, accepted, stop, metrics...
    scores: pd.DataFrame  # iteration, channel (index in the original layer), score
    stop: str
    layer: str
    extra: dict = field(default_factory=dict)  # "strategy": the fine-tuned (narrowed) strategy


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy with FairPrune's zero-keeping gradient hooks re-attached (deepcopy drops them)."""
    twin = copy.deepcopy(model)
    for m in twin.modules():
        for name, _ in list(m.named_buffers(recurse=False)):
            if name.endswith("_prune_mask"):
                keep_zeros(m, name.removesuffix("_prune_mask"))
    return twin


def group_batches(
    data: TensorData, batch_size: int, seed: int = 0, group: int | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """(inputs, group codes) in a seeded order, rows without a group left out (or one group only)."""
    keep = data.g >= 0 if group is None else data.g == group
    rows = torch.nonzero(keep.cpu()).reshape(-1)
    order = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))]
    for idx in order.split(batch_size):
        idx = idx.to(data.x.device)
        yield data.inputs(idx), (data.g[idx] if group is None else data.y[idx])


def channel_scores(model: nn.Module, data: TensorData, config: SCPConfig, device=None) -> np.ndarray:
    """SNNL-Fair score of every channel of ``config.layer`` on ``data`` (streamed, seeded batches)."""
    device = device or next(model.parameters()).device
    site = find_site(model, config.layer)
    batches = group_batches(data, config.score_batch_size, config.seed)
    return score_channels(
        model,
        site.conv,
        batches,
        config.temperature,
        device=device,
        distance=config.distance,
        include_self=config.include_self,
    ).numpy()


def scp(
    model: nn.Module,
    strategy: Strategy,
    train: TensorData,
    val: TensorData,
    finetune: TrainConfig,
    evaluate: Evaluate,
    config: SCPConfig | None = None,
) -> PruneResult:
    """Run the SCP recipe on a trained ``model`` (left untouched); see the module docstring."""
    config = config or SCPConfig()
    device = resolve_device(finetune.device)
    current = clone_model(model).to(device)
    current_strategy = copy.deepcopy(strategy).to(device)  # its heads are narrowed with the model
    site = find_site(current, config.layer)
    name, n0 = site.name, site.channels
    per_step = max(1, math.floor(config.ratio * n0 + 0.5))
    original = np.arange(n0)  # original channel index of every channel still there
    base = evaluate(current)
    rows = [{"iteration": 0, "channels": n0, "removed": 0, "accepted": True, "stop": "", **base}]
    score_rows = []
    previous, stop = base, f"max_iter ({config.max_iter})"
    for it in range(1, config.max_iter + 1):
        if site.channels - per_step < 1:
            stop = "no channels left"
            break
        live = site.live().numpy()  # a masked site (ResNet block output) keeps its zeroed channels
        scores = channel_scores(current, train, config, device)[live]
        score_rows.append(pd.DataFrame({"iteration": it - 1, "channel": original, "score": scores}))
        lowest = np.argsort(scores, kind="stable")[:per_step]
        candidate, candidate_strategy = clone_model(current), copy.deepcopy(current_strategy)
        prune_channels(candidate, config.layer, live[lowest].tolist(), heads=[candidate_strategy])
        fit(
            candidate,
            candidate_strategy,
            train,
            val,
            finetune.model_copy(update={"seed": finetune.seed + it}),
            desc=f"scp {it}",
        )
        values = evaluate(candidate)
        drop = base[config.accuracy] - values[config.accuracy]
        gain = previous[config.fairness] - values[config.fairness]
        reason = ""
        if drop > config.th_acc:
            reason = f"accuracy drop {drop:.4f} > th_acc {config.th_acc}"
        elif not gain >= config.th_fair:
            reason = f"fairness gain {gain:.4f} < th_fair {config.th_fair}"
        kept = np.delete(original, lowest)
        rows.append(
            {
                "iteration": it,
                "channels": len(kept),
                "removed": per_step,
                "accepted": not reason,
                "stop": reason,
                **values,
            }
        )
        if reason:
            stop = reason
            break
        current, current_strategy, original, previous = candidate, candidate_strategy, kept, values
        site = find_site(current, config.layer)
    final = channel_scores(current, train, config, device)[find_site(current, config.layer).live().numpy()]
    score_rows.append(pd.DataFrame({"iteration": -1, "channel": original, "score": final}))
    return PruneResult(
        model=current,
        history=pd.DataFrame(rows),
        scores=pd.concat(score_rows, ignore_index=True),
        stop=stop,
        layer=name,
        extra={"strategy": current_strategy},  # the strategy with its heads narrowed like the model
    )


def fairprune_model(
    model: nn.Module,
    train: TensorData,
    privileged: int,
    ratio: float,
    beta: float,
    batch_size: int = 32,
    seed: int = 0,
    loss_fn=None,
    steps: int = DEFAULT_STEPS,
    spare_ends: bool = True,
    max_batches: int | None = None,
    scope: str = "layer",
) -> tuple[nn.Module, dict[str, Tensor]]:
    """A FairPrune-pruned copy of ``model``: saliencies on the training rows of each group code.

    Each of the ``steps`` steps draws the groups' rows in a fresh seeded order (at most
    ``max_batches`` batches of ``batch_size`` per group, default all rows).
    """
    twin = clone_model(model)
    device = next(twin.parameters()).device
    codes = sorted(int(c) for c in torch.unique(train.g.cpu()) if c >= 0)
    if privileged not in codes or len(codes) != 2:
        raise ValueError(f"FairPrune needs two groups with the privileged one among them, got codes {codes}")
    other = codes[1 - codes.index(privileged)]

    def batches_of(group: int):
        return lambda step: itertools.islice(
            group_batches(train, batch_size, seed + step, group=group), max_batches
        )

    masks = fairprune(
        twin,
        batches_of(privileged),
        batches_of(other),
        ratio=ratio,
        beta=beta,
        device=device,
        loss_fn=loss_fn,
        steps=steps,
        spare_ends=spare_ends,
        scope=scope,
    )
    return twin, masks
