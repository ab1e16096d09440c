"""Adversarial family: heads on the shared features that predict the sensitive group.

- ``multitask`` ("reinforcing"; Dataset Distribution Impacts Model Fairness: Single vs.
  Multi-task Learning): a second head on the shared features predicts the sensitive group;
  task loss + ``aux_weight`` (1: the two losses weighted equally) x group cross-entropy.
- ``adversarial`` (same paper, after Abbasi-Sureshjani et al. 2020 "Exploring the role of
  the sensitive attribute..."): the group head sits behind a gradient reversal layer
  (Ganin & Lempitsky 2015) with penalty ``adv_lambda`` (default 5): the head learns to predict
  the group while the shared features receive ``-lambda`` times its gradient, unlearning it.
- ``laftr``: adversarially learned fair representations (Madras et al. 2018, "Learning
  Adversarially Fair and Transferable Representations"); see :class:`LAFTR`.
- ``cfair``: conditional learning of fair representations (Zhao et al. 2020, ICLR); see :class:`CFair`.
- ``lnl``: learning not to learn (Kim et al. 2019, CVPR); see :class:`LNL`.

Every minimax game here is played in one optimizer step with a gradient reversal layer: the
adversary descends its own loss while the features receive its gradient negated (and scaled);
``adversarial`` with ``adv_mode: alternating`` instead alternates three updates (see the class).
The group heads ignore rows without a group (code -1). They refuse a training set with fewer than
two groups unless ``single_group: allow``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fairmed.errors import SpecError
from fairmed.models.backbones import mlp_head
from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData
from fairmed.train.strategies.base import Strategy, frozen_bn, register
from fairmed.train.strategies.losses import Task, negative_entropy, weighted_mean

ADVERSARY_WIDTH = 128  # hidden units of the LAFTR / CFair adversaries (MEDFAIR's adversary_size)


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


def frozen_call(module: nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` with its parameters detached: the gradient reaches ``x`` only."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, (x,))


def _present_codes(train: TensorData) -> Tensor:
    return torch.unique(train.g[train.g >= 0].cpu())


@register("multitask")
class Multitask(Strategy):
    """ "Reinforcing" second head predicting the sensitive group; the two losses weighted equally."""

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)
        self.group_head = mlp_head(feature_dim, max(self.n_groups, 1), spec.aux_hidden, spec.aux_activation)

    def group_input(self, z: Tensor) -> Tensor:
        return z

    def group_loss(self, z: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        return self.group_ce(self.group_input(z), g, w)

    def group_ce(self, x: Tensor, g: Tensor, w: Tensor | None, frozen: bool = False) -> Tensor:
        """The group head's (weighted) cross-entropy on ``x``, rows without a group left out;
        ``frozen``: the head's parameters held fixed (the gradient reaches ``x`` only)."""
        known = g >= 0
        logits = (frozen_call(self.group_head, x) if frozen else self.group_head(x)).float()
        per = F.cross_entropy(logits, g.clamp(min=0), reduction="none") * known
        if w is not None:
            per = per * w
        return per.sum() / known.sum().clamp(min=1)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        return self.task_loss(logits, y, w) + self.spec.aux_weight * self.group_loss(z, g, w)


@register("adversarial")
class Adversarial(Multitask):
    """Group head against the shared features, penalty ``adv_lambda`` (default 5).

    ``adv_mode: reversal``: one step, the group head behind a gradient reversal layer.
    ``adv_mode: alternating`` (the sex-ratio paper, after Adeli et al.'s BR-Net): three updates per
    mini-batch, each moving one part of the network with the others held fixed:

    1. the task head on the task loss ``L_c`` (the features are computed once per batch and serve all
       three steps: the encoder moves only in step 3);
    2. the group head (bias predictor) on its cross-entropy ``L_bp`` on the same features;
    3. the encoder (``model.features``) on ``L_c - adv_lambda * L_bp`` through both updated heads.

    The three share one optimizer; a step moves only the parameters that received a gradient
    (``zero_grad(set_to_none=True)``: Adam and SGD skip the others, weight decay included).
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self.reverse = GradientReversal(spec.adv_lambda)

    def group_input(self, z: Tensor) -> Tensor:
        return self.reverse(z)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        return self.task_loss(logits, y, w) + self.group_loss(z, g, w)

    def train_step(self, stepper, idx: Tensor) -> Tensor:
        if self.spec.adv_mode == "reversal":
            return super().train_step(stepper, idx)
        model, batch = stepper.model, stepper.batch(idx)
        with stepper.autocast():
            # one forward pass serves all three: the encoder does not move before step 3
            z = model.features(batch.x)
            task = self.task_loss(model.head(z.detach()), batch.y, batch.w)
        _step_on(stepper, task)  # 1. the task head
        with stepper.autocast():
            bias = self.group_ce(z.detach(), batch.g, batch.w)
        _step_on(stepper, bias)  # 2. the group head
        with stepper.autocast():
            task_z = self.task_loss(frozen_call(model.head, z), batch.y, batch.w)
            bias_z = self.group_ce(z, batch.g, batch.w, frozen=True)
        _step_on(stepper, task_z - self.spec.adv_lambda * bias_z)  # 3. the encoder, heads fixed
        return (task + bias).detach()


def _step_on(stepper, loss: Tensor) -> None:
    """One optimizer step on ``loss`` alone: only the parameters it reaches move."""
    stepper.opt.zero_grad(set_to_none=True)
    stepper.backward(loss)
    stepper.update()


@register("laftr")
class LAFTR(Strategy):
    """LAFTR (Madras et al. 2018): ``class_coeff * L_task - fair_coeff * L_adv``, the adversary maximising.

    The adversary ``h`` (MLP, 128 hidden units) reads the features ``z`` (``laftr_variant: dp``)
    or ``z`` with the label (``eqodd``, ``eqopp``: MEDFAIR's default ``laftr-eqodd``) and outputs
    ``P(a = 1)`` for the two groups ``a``. Its loss is the weighted L1 error ``|a - h|`` with
    weights ``1 / (K P(cell))`` over the cells group (dp), group x label (eqodd) or group x
    positive label (eqopp, other rows weight 0): the paper's group-normalised audit losses, whose
    optima bound demographic parity / equalized odds / equal opportunity. The adversary descends
    ``fair_coeff * L_adv``; the features receive its gradient negated (gradient reversal).
    ``aud_steps - 1`` further adversary-only steps follow each step (MEDFAIR's ``aud_steps``).
    Needs exactly two groups. MEDFAIR's adversary has no non-linearity between its layers and
    steps on the same sign as the encoder; this follows the paper.
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        present = _present_codes(train)
        if len(present) != 2:
            raise SpecError(
                f"strategy 'laftr' needs exactly two groups in the training set (its audit is binary),"
                f" found {len(present)}: {list(train.group_names)}; use cfair or adversarial for more"
            )
        self.variant = spec.laftr_variant
        n_label = 0 if self.variant == "dp" else task.n_classes - 1
        self.adversary = mlp_head(feature_dim + n_label, 1, ADVERSARY_WIDTH)
        lookup = torch.full((max(self.n_groups, 1),), -1, dtype=torch.long)
        lookup[present] = torch.arange(2)
        self.register_buffer("a_of_code", lookup)
        self.register_buffer("cell_weight", self._cell_weights(self._a(train.g.cpu(), lookup), train.y.cpu()))

    def _a(self, g: Tensor, lookup: Tensor | None = None) -> Tensor:
        """Binary group (0/1) of each row, -1 without a group."""
        lookup = self.a_of_code if lookup is None else lookup
        return torch.where(g >= 0, lookup[g.clamp(min=0)], torch.full_like(g, -1))

    def _cell(self, a: Tensor, y: Tensor) -> Tensor:
        return a if self.variant == "dp" else a * self.task.n_classes + y

    def _cell_weights(self, a: Tensor, y: Tensor) -> Tensor:
        """``N / (K N_c)`` for each cell ``c`` the audit covers, 0 for the others."""
        n_cells = 2 if self.variant == "dp" else 2 * self.task.n_classes
        keep = a >= 0
        if self.variant == "eqopp":
            keep &= y == self.task.n_classes - 1
        counts = torch.bincount(self._cell(a, y)[keep], minlength=n_cells).double()
        k = int((counts > 0).sum())
        return torch.where(counts > 0, keep.sum() / (k * counts.clamp(min=1)), 0.0).float()

    def adversary_input(self, z: Tensor, y: Tensor) -> Tensor:
        if self.variant == "dp":
            return z
        onehot = F.one_hot(y, self.task.n_classes)[:, 1:].to(z.dtype)
        return torch.cat([z, onehot], dim=1)

    def audit_loss(self, z: Tensor, y: Tensor, g: Tensor) -> Tensor:
        """Weighted mean L1 error of the adversary on ``z`` (reverse ``z`` first to train the encoder)."""
        a = self._a(g)
        p = torch.sigmoid(self.adversary(self.adversary_input(z, y)).float()[:, 0])
        wts = torch.where(a >= 0, self.cell_weight[self._cell(a.clamp(min=0), y)], 0.0)
        return (wts * (a.float() - p).abs()).mean()

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        task = self.spec.class_coeff * self.task_loss(logits, y, w)
        return task + self.spec.fair_coeff * self.audit_loss(grad_reverse(z), y, g)

    def train_step(self, stepper, idx: Tensor) -> Tensor:
        loss = super().train_step(stepper, idx)
        if self.spec.aud_steps > 1:
            batch = stepper.batch(idx)
            for _ in range(self.spec.aud_steps - 1):
                with torch.no_grad(), stepper.autocast(), frozen_bn(stepper.model):
                    z = stepper.model.features(batch.x)  # batch-norm statistics move once per batch
                stepper.opt.zero_grad(set_to_none=True)  # only the adversary gets a gradient
                with stepper.autocast():
                    adv = self.spec.fair_coeff * self.audit_loss(z.detach(), batch.y, batch.g)
                stepper.backward(adv)
                stepper.update()
        return loss


@register("cfair")
class CFair(Strategy):
    """CFair (Zhao et al. 2020): balanced error rate plus one group adversary per class, weight ``cfair_mu``.

    Task loss: each row weighted ``1 / (C P(y))`` (the balanced error rate's surrogate). For each
    class ``j``, an adversary (MLP, 128 hidden units) behind gradient reversal predicts the group
    of the rows with ``y = j``, its cross-entropy weighted ``1 / P(a | y = j)`` (balanced over
    groups; PyTorch's weighted NLL mean); the adversarial loss is the mean over the classes present
    in the batch. Loss = task + ``cfair_mu`` x adversarial (MEDFAIR default 0.1). Any number of groups.
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)
        n_groups, n_classes = max(self.n_groups, 1), task.n_classes
        self.adversaries = nn.ModuleList(
            mlp_head(feature_dim, n_groups, ADVERSARY_WIDTH) for _ in range(n_classes)
        )
        y, g = train.y.cpu(), train.g.cpu()
        class_n = torch.bincount(y, minlength=n_classes).double()
        self.register_buffer("class_weight", (len(y) / (n_classes * class_n.clamp(min=1))).float())
        known = g >= 0
        joint = torch.zeros(n_classes, n_groups, dtype=torch.float64)
        joint.index_put_(
            (y[known], g[known]), torch.ones(int(known.sum()), dtype=torch.float64), accumulate=True
        )
        cond = joint / joint.sum(1, keepdim=True).clamp(min=1)  # P(a | y)
        self.register_buffer("group_weight", torch.where(cond > 0, 1.0 / cond.clamp(min=1e-12), 0.0).float())

    def adversarial_loss(self, z: Tensor, y: Tensor, g: Tensor) -> Tensor:
        """Mean over the classes present of each conditional adversary's weighted NLL on ``z``."""
        losses = []
        for j, adversary in enumerate(self.adversaries):
            rows = (y == j) & (g >= 0)
            if rows.any():
                logits = adversary(z[rows]).float()
                losses.append(F.cross_entropy(logits, g[rows], weight=self.group_weight[j]))
        return torch.stack(losses).mean() if losses else z.sum() * 0.0

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        balanced = self.class_weight[y] if w is None else w * self.class_weight[y]
        task = weighted_mean(self.task.per_sample(logits, y), balanced)
        return task + self.spec.cfair_mu * self.adversarial_loss(grad_reverse(z), y, g)


@register("lnl")
class LNL(Strategy):
    """Learning Not to Learn (Kim et al. 2019): the bias predictor's entropy maximised, weight ``lnl_lambda``.

    A bias head ``h`` on the shared features predicts the group; loss =
    ``task + lnl_lambda * mean_i sum_k p_ik log p_ik`` (the negative entropy of ``p = softmax(h(z))``,
    its gradient reaching only the features: the mutual-information surrogate) ``+ CE(h(R(z)), g)``
    with ``R`` gradient reversal (the head learns the group, the features unlearn it). MEDFAIR's
    default ``lambda`` 0.1; MEDFAIR puts the bias head on ResNet's layer2 maps, here it reads ``z``
    (every backbone and the MLP alike).
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)
        self.bias_head = mlp_head(feature_dim, max(self.n_groups, 1), spec.aux_hidden, spec.aux_activation)

    def neg_entropy(self, z: Tensor) -> Tensor:
        """``mean_i sum_k p_ik log p_ik`` with the bias head's parameters held fixed."""
        return negative_entropy(frozen_call(self.bias_head, z))

    def bias_loss(self, z: Tensor, g: Tensor) -> Tensor:
        known = g >= 0
        per = F.cross_entropy(self.bias_head(z).float(), g.clamp(min=0), reduction="none") * known
        return per.sum() / known.sum().clamp(min=1)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        task = self.task_loss(logits, y, w)
        return task + self.spec.lnl_lambda * self.neg_entropy(z) + self.bias_loss(grad_reverse(z), g)
