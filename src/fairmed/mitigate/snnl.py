"""SNNL-Fair channel scores: how well one channel's feature maps separate two sensitive groups.

For a batch of ``b`` samples, channel ``k``, flattened feature maps ``m_i`` and binary sensitive
attributes ``c_i`` (the soft nearest-neighbour loss of Frosst et al., applied per channel as in
"Achieving Fairness Through Channel Pruning for Dermatological Disease Diagnosis")::

    l(t, k) = -(1/b') sum_i log( sum_{j != i, c_j = c_i} exp(-||m_i - m_j||^2 / T)
                                 / sum_{p != i}          exp(-||m_i - m_p||^2 / T) )

and the score ``S_k`` is the mean of ``l(t, k)`` over batches ``t``. A LOW score means the
nearest neighbours of a sample in that channel mostly share its group: the channel encodes the
sensitive attribute, and it is the one the pruning recipe removes first.

Single-member groups: a sample whose group has no other member in the batch has an empty
numerator (log 0 = -inf). Such samples are left out, and the batch mean divides by the number
``b'`` of samples that remain (a lone sample still counts as a neighbour in the others'
denominators). A batch where no sample remains (every group has one member, e.g. b < 2)
contributes nothing, neither to the sum nor to the batch count. A batch of a single group gives
l = 0 for every channel (numerator = denominator) and counts.

The authors' code (``SoftNearestNeighborLoss`` in Kong et al.'s public SNNL.py) computes it
differently, and on synthetic channels the two rank channels almost independently, so both are
offered: ``distance="cosine"`` uses d_ij = 1 - <m_i/||m_i||, m_j/||m_j||> (a zero map has distance 1
to everything, itself included, as ``torch.nn.functional.normalize`` makes it) instead of the
squared Euclidean distance, and ``include_self=True`` counts the sample itself in the numerator
(its term exp(-d_ii / T)) and adds ``AUTHORS_EPS`` = 1e-9 to it, as that code does; every sample is
then valid (a lone sample's ratio is (1 + eps) / den) and the batch mean is over all ``b`` samples.
The denominator never counts the sample itself. The authors' setting is ``temperature=1,
distance="cosine", include_self=True``; fairmed's default stays the paper's Eq. 1.

Everything is one batched tensor computation over all channels (squared distances for all
channels as one (K, b, b) batched matmul with the norms folded in, one exponential pass shifted by
each row's nearest neighbour, every row's per-group sums as one matmul with the groups' one-hot
matrix (denominator = their total, numerator = the row's own group), and masked
log-sum-exp where a same-group sum underflows); ``chunk`` channels at a time bound the memory
to chunk * b * b floats and keep it cache-sized.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

DEFAULT_TEMPERATURE = 1.0
AUTHORS_EPS = 1e-9  # added to the numerator when the sample itself is counted (the authors' code)
Distance = Literal["sqeuclidean", "cosine"]
DISTANCES = ("sqeuclidean", "cosine")


def pairwise_sq_dists(x: Tensor) -> Tensor:
    """Squared Euclidean distances (K, b, b) between the rows of every channel's (b, D) block."""
    norms = (x * x).sum(-1)
    # ||a||^2 - 2 a.b (the row norms broadcast into baddbmm), then + ||b||^2 in place: one (K, b, b) tensor
    d = torch.baddbmm(norms.unsqueeze(-1), x, x.transpose(1, 2), alpha=-2.0)
    d.add_(norms.unsqueeze(-2)).clamp_(min=0.0)
    d.diagonal(dim1=1, dim2=2).zero_()
    return d


def pairwise_cos_dists(x: Tensor) -> Tensor:
    """Cosine distances 1 - cos (K, b, b) between the rows of every channel's (b, D) block, with the true
    diagonal (0 for a nonzero row, 1 for a zero row, whose normalised vector is zero)."""
    unit = nn.functional.normalize(x, dim=-1)
    return torch.baddbmm(
        torch.ones((), dtype=x.dtype, device=x.device), unit, unit.transpose(1, 2), alpha=-1.0
    )


CHUNK_FLOATS = 1 << 20  # default CPU channel chunk: about 4 MB of (chunk, b, b) float32, cache-sized
CHUNK_FLOATS_GPU = 1 << 26  # on a GPU: up to 256 MB per chunk (fewer, larger kernels)
TINY = 1e-30  # a same-group sum below this is recomputed in log space (exact for any spread)
MAX_SHIFT = 87.0  # exp(-87) ~ 1.6e-38: the smallest normal float32


def _chunk_terms(x: Tensor, masks: tuple[Tensor, Tensor, Tensor], temperature: float) -> Tensor:
    """log(den) - log(num) (K, b) for one chunk of channels x (K, b, D).

    One exponential pass: distances are shifted by each row's nearest other sample (so the
    largest term is exp(0) = 1 and nothing overflows) and capped at ``MAX_SHIFT`` (so exp never
    produces float32 denormals, which are ~15x slower on CPUs; a capped term is below 1e-37 and
    cannot change a denominator >= 1). The group sums are one matmul with the one-hot groups. Rows whose
    same-group sum is below ``TINY`` are recomputed exactly by masked log-sum-exp.
    """
    others, same_others, onehot = masks
    d = pairwise_sq_dists(x)
    diag = d.diagonal(dim1=1, dim2=2)
    diag.fill_(float("inf"))
    nearest = d.amin(-1, keepdim=True)
    e = d.sub_(nearest).mul_(1.0 / temperature).clamp_(max=MAX_SHIFT).neg_().exp_()  # in place
    diag.zero_()
    per_group = torch.matmul(e, onehot)  # (K, b, G): each row's sum over every group, one pass
    den = per_group.sum(-1)
    num = (per_group * onehot).sum(-1)  # the row's own group
    if bool((num < TINY).any()):
        return _general_terms(x, (others, same_others), temperature, "sqeuclidean", False)
    return den.log_().sub_(num.log_())


def _general_terms(
    x: Tensor, masks: tuple[Tensor, Tensor], temperature: float, distance: str, include_self: bool
):
    """log(den) - log(num) (K, b) by masked log-sum-exp for the non-default variants (see the module
    docstring): cosine and/or squared Euclidean distance, the sample itself in the numerator or not."""
    others, numerator = masks
    d = pairwise_cos_dists(x) if distance == "cosine" else pairwise_sq_dists(x)
    logits = d * (-1.0 / temperature)
    neg_inf = torch.tensor(float("-inf"), device=d.device)
    den = torch.logsumexp(torch.where(others, logits, neg_inf), dim=-1)
    num = torch.logsumexp(torch.where(numerator, logits, neg_inf), dim=-1)
    if include_self:
        num = torch.logaddexp(num, torch.tensor(math.log(AUTHORS_EPS), device=d.device))
    return den - num


def snnl_sample_terms(
    features: Tensor,
    groups: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    distance: Distance = "sqeuclidean",
    include_self: bool = False,
    chunk: int | None = None,
) -> tuple[Tensor, int]:
    """Per-channel sums of -log ratio over the valid samples of one batch, and their count.

    ``features``: (b, K, ...) activations (any trailing spatial shape); ``groups``: (b,) codes.
    Returns ``(sums (K,), n_valid)``; the batch loss is ``sums / n_valid`` when n_valid > 0.
    ``distance`` / ``include_self``: the paper's Eq. 1 (default) or the authors' code's variant (module
    docstring). ``chunk`` channels are processed at a time (default: about 4 MB of distances on a
    CPU, 256 MB on a GPU).
    """
    if temperature <= 0:
        raise ValueError(f"SNNL temperature must be > 0, got {temperature}")
    if distance not in DISTANCES:
        raise ValueError(f"SNNL distance must be one of {DISTANCES}, got {distance!r}")
    b, k = features.shape[0], features.shape[1]
    groups = groups.reshape(-1).to(features.device)
    if groups.shape[0] != b:
        raise ValueError(f"SNNL: {b} feature rows but {groups.shape[0]} group codes")
    same = groups.unsqueeze(0) == groups.unsqueeze(1)
    others = ~torch.eye(b, dtype=torch.bool, device=features.device)
    same_others = same & others
    valid = torch.ones(b, dtype=torch.bool, device=features.device) if include_self else same_others.any(1)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return torch.zeros(k, device=features.device), 0
    x = features.reshape(b, k, -1).transpose(0, 1).to(torch.float32)  # (K, b, D)
    _, codes = torch.unique(groups, return_inverse=True)
    onehot = nn.functional.one_hot(codes).to(torch.float32)  # (b, G)
    budget = CHUNK_FLOATS_GPU if features.device.type == "cuda" else CHUNK_FLOATS
    step = chunk if chunk else max(1, budget // (b * b))
    if distance == "sqeuclidean" and not include_self:  # the paper's Eq. 1: the one-pass fast path
        terms = partial(_chunk_terms, masks=(others, same_others, onehot), temperature=temperature)
    else:
        masks = (others, same if include_self else same_others)
        terms = partial(
            _general_terms, masks=masks, temperature=temperature, distance=distance, include_self=include_self
        )
    parts = [  # a loop over channel CHUNKS (bounded memory, cache-sized), never one channel each
        terms(x[s : s + step])[:, valid].sum(-1) for s in range(0, k, step)
    ]
    return torch.cat(parts), n_valid


def snnl_batch(
    features: Tensor,
    groups: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    distance: Distance = "sqeuclidean",
    include_self: bool = False,
    chunk: int | None = None,
) -> Tensor:
    """l(t, k) for every channel of one batch (K,); NaN for every channel if no sample is valid.

    ``distance="cosine", include_self=True`` (T = 1) is the authors' code; the defaults the paper's Eq. 1.
    """
    sums, n_valid = snnl_sample_terms(features, groups, temperature, distance, include_self, chunk)
    if n_valid == 0:
        return torch.full_like(sums, float("nan"))
    return sums / n_valid


class SNNLAccumulator:
    """Running mean of per-batch SNNL losses over a stream of batches (no feature maps kept)."""

    def __init__(
        self,
        temperature: float = DEFAULT_TEMPERATURE,
        chunk: int | None = None,
        distance: Distance = "sqeuclidean",
        include_self: bool = False,
    ):
        self.temperature = temperature
        self.chunk = chunk
        self.distance = distance
        self.include_self = include_self
        self.total: Tensor | None = None
        self.batches = 0

    def update(self, features: Tensor, groups: Tensor) -> None:
        loss = snnl_batch(
            features.detach(), groups, self.temperature, self.distance, self.include_self, chunk=self.chunk
        )
        if torch.isnan(loss).all():
            return
        loss = loss.to(torch.float64).cpu()
        self.total = loss if self.total is None else self.total + loss
        self.batches += 1

    def scores(self) -> Tensor:
        """S_k (K,) as float64 on CPU; raises if no batch had a valid sample."""
        if self.total is None:
            raise ValueError("SNNL: no batch had two samples of the same group; cannot score channels")
        return self.total / self.batches


def score_channels(
    model: nn.Module,
    layer: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    temperature: float = DEFAULT_TEMPERATURE,
    chunk: int | None = None,
    device: str | torch.device = "cpu",
    forward: Callable[[nn.Module, Tensor], object] | None = None,
    distance: Distance = "sqeuclidean",
    include_self: bool = False,
) -> Tensor:
    """SNNL-Fair score of every output channel of ``layer`` over ``batches`` of (inputs, groups).

    A forward hook on ``layer`` feeds each batch's activations to the accumulator, so only one
    batch of feature maps lives at a time. The model runs in eval mode without gradients.
    """
    acc = SNNLAccumulator(temperature, chunk, distance, include_self)
    current: dict[str, Tensor] = {}

    def hook(_module, _inputs, output):
        acc.update(output, current["groups"])

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, groups in batches:
                current["groups"] = torch.as_tensor(groups)
                x = inputs.to(device)
                if forward is None:
                    model(x)
                else:
                    forward(model, x)
    finally:
        handle.remove()
        model.train(was_training)
    return acc.scores()
