"""Representation family: what the shared features may encode, and how the head reads them.

- ``domainind``: domain-independent training (Wang et al. 2020, "Towards Fairness in Visual
  Recognition: Effective Strategies for Bias Mitigation"); see :class:`DomainInd`.
- ``end``: EnD, entangling and disentangling deep representations (Tartaglione et al. 2021,
  CVPR); see :class:`EnD`.
- ``odr``: orthogonal disentangled representations (Sarhan et al. 2020, ECCV "Fairness by
  Learning Orthogonal Disentangled Representations"); see :class:`ODR`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairmed.errors import SpecError
from fairmed.train.config import StrategySpec
from fairmed.train.data import TensorData
from fairmed.train.strategies.adversarial import frozen_call
from fairmed.train.strategies.base import Strategy, register
from fairmed.train.strategies.losses import Task, negative_entropy


class DomainHeads(nn.Module):
    """One linear head per group in one ``Linear(d, G * n_out)``; ``forward`` sums the groups' logits."""

    def __init__(self, feature_dim: int, n_out: int, n_groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_out, self.n_groups = n_out, n_groups
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(feature_dim, n_groups * n_out)

    def per_group(self, z: Tensor) -> Tensor:
        """Logits of every group's head: (n, G, n_out)."""
        return self.linear(self.dropout(z)).view(len(z), self.n_groups, self.n_out)

    def forward(self, z: Tensor) -> Tensor:
        return self.per_group(z).sum(1)


@register("domainind")
class DomainInd(Strategy):
    """Domain-independent training (Wang et al. 2020): one classifier head per group.

    The model's head becomes one head per group; a row with group ``a`` trains head ``a`` only
    (its logits under the task loss; rows without a group train the sum). Inference does not know
    the group: the score is the link (sigmoid / softmax) of the **sum of the per-group logits**
    (Wang et al.'s "sum of outputs" rule, MEDFAIR's ``inference_sum_prob``), i.e. the class whose
    logit summed over the group heads is largest.
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)

    heads: DomainHeads | None = None  # the model's head after attach (owned by the model, not a submodule)

    def attach(self, model: nn.Module) -> None:
        if not isinstance(model.head, DomainHeads):
            old = model.head
            dropout = next((m.p for m in old.modules() if isinstance(m, nn.Dropout)), 0.0)
            linears = [m for m in old.modules() if isinstance(m, nn.Linear)]
            if len(linears) > 1:
                raise SpecError(
                    "strategy 'domainind' gives each group its own linear head, which would drop"
                    " model.head_hidden's layers; set model.head_shared: true to keep them as shared features"
                )
            n_out = linears[0].out_features
            model.head = DomainHeads(self.feature_dim, n_out, max(self.n_groups, 1), dropout)
        object.__setattr__(self, "heads", model.head)

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        if self.heads is None:
            raise RuntimeError("DomainInd.attach(model) must run before training")
        own = self.heads.per_group(z)[torch.arange(len(z), device=z.device), g.clamp(min=0)]
        chosen = torch.where((g >= 0).view(-1, 1), own, logits)
        return self.task_loss(chosen, y, w)


def end_regulariser(z: Tensor, y: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """EnD's ``(R_orthogonal, R_parallel)`` on the Gram matrix of the L2-normalised features.

    Over unordered pairs ``i > j`` of rows with a group: ``R_orth = sum_b |sum_{pairs in group b}
    G_ij| / M_same`` (features of the same group pushed orthogonal: the bias disentangled), and
    ``R_par = 1 - sum_{same label, other group} (1 + G_ij) / 2 / M_cross`` (features of the same
    class across groups pushed parallel: the target entangled); each 0 without such pairs.
    """
    d = F.normalize(z.float().flatten(1), dim=1)
    gram = (d @ d.T).clamp(-1.0, 1.0)
    n = len(z)
    lower = torch.ones(n, n, dtype=torch.bool, device=z.device).tril(-1)
    known = (g >= 0).view(-1, 1) & (g >= 0).view(1, -1) & lower
    same_g = known & (g.view(-1, 1) == g.view(1, -1))
    cross = known & (g.view(-1, 1) != g.view(1, -1)) & (y.view(-1, 1) == y.view(1, -1))
    rows = g.view(-1, 1).expand(n, n)[same_g].clamp(min=0)
    per_group = torch.zeros(int(g.max().clamp(min=0)) + 1, device=z.device).index_add(0, rows, gram[same_g])
    m_same, m_cross = same_g.sum(), cross.sum()
    r_orth = per_group.abs().sum() / m_same.clamp(min=1)
    r_par = torch.where(m_cross > 0, 1.0 - ((1.0 + gram) * 0.5 * cross).sum() / m_cross.clamp(min=1), 0.0)
    return r_orth, r_par


@register("end")
class EnD(Strategy):
    """EnD (Tartaglione et al. 2021): task loss + ``end_alpha R_orth + end_beta R_par`` (MEDFAIR: 0.1, 0.1).

    The regulariser (:func:`end_regulariser`) works on the Gram matrix of the L2-normalised shared
    features within the mini-batch. MEDFAIR's version counts, of two groups' cross pairs, only
    those where the first group's row comes later; here every unordered pair counts once.
    """

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        r_orth, r_par = end_regulariser(z, y, g)
        return self.task_loss(logits, y, w) + self.spec.end_alpha * r_orth + self.spec.end_beta * r_par


def gaussian_kl(mean: Tensor, log_var: Tensor, prior_mean: Tensor) -> Tensor:
    """``KL(N(mean, diag e^log_var) || N(prior_mean, I))`` per row, averaged over dimensions."""
    return 0.5 * (log_var.exp() + (mean - prior_mean) ** 2 - 1.0 - log_var).mean(1)


@register("odr")
class ODR(Strategy):
    """Orthogonal disentangled representations (Sarhan et al. 2020) on fairmed's shared features.

    The target representation is the features ``z`` (mean) with a learned log-variance; a
    sensitive encoder (mean, log-variance) reads ``z`` detached. A sensitive classifier ``D``
    learns the group from a sample of the sensitive code (``L_s``) and, with its parameters held
    fixed, is made uncertain on a sample of the target code (``L_e``: negative entropy). The two
    codes are pulled to Gaussian priors with orthogonal means ``e_0`` and ``1 - e_0`` (``L_od``:
    the KLs, per dimension). Loss = ``L_t + lambda_od(t) L_od + lambda_e(t) L_e + L_s`` with
    ``lambda(t) = lambda * gamma ** (t / odr_step_size)`` after ``t`` epochs (MEDFAIR's defaults:
    0.1, 0.1, 0.1, 0.1, 20). MEDFAIR's KLs compare detached samples (no gradient) and its
    entropy term is minimised; this follows the paper. The head reads the mean code ``z``.
    """

    def __init__(self, spec: StrategySpec, task: Task, feature_dim: int, train: TensorData) -> None:
        super().__init__(spec, task, feature_dim, train)
        self._need_groups(train)
        d = feature_dim
        self.target_log_var = nn.Linear(d, d)
        self.sensitive_mean = nn.Linear(d, d)
        self.sensitive_log_var = nn.Linear(d, d)
        self.discriminator = nn.Linear(d, max(self.n_groups, 1))
        prior = torch.zeros(d)
        prior[0] = 1.0
        self.register_buffer("prior_t", prior)
        self.register_buffer("prior_s", 1.0 - prior)
        self.epochs_done = 0

    def weights(self) -> tuple[float, float]:
        """``(lambda_e, lambda_od)`` after ``epochs_done`` epochs."""
        s, t = self.spec, self.epochs_done / self.spec.odr_step_size
        return s.odr_lambda_e * s.odr_gamma_e**t, s.odr_lambda_od * s.odr_gamma_od**t

    def loss(self, z: Tensor, logits: Tensor, y: Tensor, g: Tensor, w: Tensor | None) -> Tensor:
        z = z.float().flatten(1)
        lv_t = self.target_log_var(z).float()
        zs = z.detach()
        mean_s, lv_s = self.sensitive_mean(zs).float(), self.sensitive_log_var(zs).float()
        code_t = z + (0.5 * lv_t).exp() * torch.randn_like(z)
        code_s = mean_s + (0.5 * lv_s).exp() * torch.randn_like(mean_s)
        known = g >= 0
        per_s = F.cross_entropy(self.discriminator(code_s).float(), g.clamp(min=0), reduction="none")
        l_s = (per_s * known).sum() / known.sum().clamp(min=1)
        l_e = negative_entropy(frozen_call(self.discriminator, code_t))
        l_od = (gaussian_kl(z, lv_t, self.prior_t) + gaussian_kl(mean_s, lv_s, self.prior_s)).mean()
        lam_e, lam_od = self.weights()
        return self.task_loss(logits, y, w) + lam_od * l_od + lam_e * l_e + l_s

    def end_epoch(self, epoch: int, stepper, scores: dict[str, float]) -> None:
        self.epochs_done = epoch


__all__ = ["ODR", "DomainHeads", "DomainInd", "EnD", "end_regulariser", "gaussian_kl"]
