"""FairPrune (Wu et al., MICCAI 2022): prune the weights the privileged group needs but the other does not.

What is implemented (the baseline of the channel-pruning paper):

1. Saliency of weight ``w_i`` for group ``g`` (Optimal Brain Damage): ``S_g(i) = 0.5 * w_i^2 * H_ii``,
   with the diagonal Hessian of the cross-entropy on group ``g`` approximated by the empirical
   Fisher diagonal at mini-batch granularity: ``H_ii ~ mean_t (dL_t / dw_i)^2`` over mini-batches
   ``t`` of group ``g`` only (``L_t`` the batch's mean cross-entropy, model in eval mode).
2. Pruning score ``S_priv(i) - beta * S_unpriv(i)``: large for weights important to the
   privileged group and unimportant to the unprivileged one.
3. In every prunable layer (the weights of ``Conv2d`` and ``Linear`` modules; biases and batch
   norms are kept), the fraction ``ratio`` of the still non-zero weights with the largest score
   is set to zero. A ``weight_prune_mask`` buffer records the zeros, and a gradient hook keeps
   them at zero during any later fine-tuning (SCP-FairPrune).

The privileged group is the one the model is more accurate on (``privileged_group``) unless given.
Defaults ``ratio = 0.05``, ``beta = 0.3`` are fairmed's; the paper tunes both per dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from fairmed.mitigate.structural import keep_zeros

DEFAULT_RATIO = 0.05
DEFAULT_BETA = 0.3


def prunable_weights(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose ``weight`` FairPrune may zero: every Conv2d and Linear, by name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def default_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy (one logit: binary cross-entropy with logits)."""
    if logits.shape[1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(logits[:, 0].float(), y.float())
    return nn.functional.cross_entropy(logits.float(), y.long())


def fisher_diagonal(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: str | torch.device = "cpu",
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Mean squared mini-batch gradient of every prunable weight (the diagonal Fisher/Hessian).

    ``loss_fn(logits, y)`` is the batch's mean loss (default: cross-entropy, or binary
    cross-entropy with logits when the model has one output).
    """
    modules = prunable_weights(model)
    loss_fn = loss_fn or default_loss
    sums = {n: torch.zeros_like(m.weight) for n, m in modules.items()}
    was_training = model.training
    model.eval()
    count = 0
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            logits = model(x.to(device))
            loss = loss_fn(logits, y.to(device))
            loss.backward()
            for n, m in modules.items():
                if m.weight.grad is not None:
                    sums[n] += m.weight.grad.detach() ** 2
            count += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if count == 0:
        raise ValueError("FairPrune: no batch for a group; cannot estimate its saliency")
    return {n: s / count for n, s in sums.items()}


def saliency(model: nn.Module, fisher: dict[str, Tensor]) -> dict[str, Tensor]:
    """``0.5 * w^2 * H_ii`` for every prunable weight."""
    modules = prunable_weights(model)
    return {n: 0.5 * modules[n].weight.detach() ** 2 * h for n, h in fisher.items()}


def fairprune_masks(
    model: nn.Module,
    fisher_priv: dict[str, Tensor],
    fisher_unpriv: dict[str, Tensor],
    ratio: float = DEFAULT_RATIO,
    beta: float = DEFAULT_BETA,
) -> dict[str, Tensor]:
    """Per layer, 1 = keep / 0 = prune: the top ``ratio`` of the non-zero weights by S_priv - beta S_unpriv."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"FairPrune ratio must be in [0, 1), got {ratio}")
    s_priv, s_unpriv = saliency(model, fisher_priv), saliency(model, fisher_unpriv)
    masks = {}
    for name, module in prunable_weights(model).items():
        w = module.weight.detach()
        alive = w != 0
        score = (s_priv[name] - beta * s_unpriv[name]).masked_fill(~alive, float("-inf")).reshape(-1)
        k = int(ratio * int(alive.sum()))
        mask = alive.clone().reshape(-1)
        if k > 0:
            mask[torch.topk(score, k).indices] = False
        masks[name] = mask.reshape(w.shape).to(w.dtype)
    return masks


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Zero the pruned weights and keep them at zero (mask buffer + gradient hook)."""
    modules = prunable_weights(model)
    for name, mask in masks.items():
        m = modules[name]
        old = getattr(m, "weight_prune_mask", None)
        mask = mask if old is None else mask * old
        with torch.no_grad():
            m.weight.mul_(mask)
        if old is None:
            m.register_buffer("weight_prune_mask", mask.clone())
            keep_zeros(m)
        else:
            m.weight_prune_mask.copy_(mask)


def sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all prunable weights."""
    ws = [m.weight.detach() for m in prunable_weights(model).values()]
    return float(sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws)))


def fairprune(
    model: nn.Module,
    priv_batches: Iterable[tuple[Tensor, Tensor]],
    unpriv_batches: Iterable[tuple[Tensor, Tensor]],
    ratio: float = DEFAULT_RATIO,
    beta: float = DEFAULT_BETA,
    device: str | torch.device = "cpu",
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Prune ``model`` in place with FairPrune; returns the masks (1 keep, 0 pruned) by module name."""
    f_priv = fisher_diagonal(model, priv_batches, device, loss_fn)
    f_unpriv = fisher_diagonal(model, unpriv_batches, device, loss_fn)
    masks = fairprune_masks(model, f_priv, f_unpriv, ratio, beta)
    apply_masks(model, masks)
    return masks
