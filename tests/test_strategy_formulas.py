"""Resample, multitask and adversarial against their formulas, through the public training API
(``fairmed.train``: make_strategy, Task, tensor_data, StrategySpec): an adversarial strategy turned
into multitask, a resample ignoring the cells or a multitask ignoring ``aux_weight`` fails here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fairmed.data.cohort import Cohort
from fairmed.train import StrategySpec, Task, make_strategy, tensor_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

Y = np.array([0, 1, 1, 0, 1, 0])
G = np.array([0, 0, 0, 1, 1, 1])


def _train(y=Y, g=G):
    cohort = Cohort(
        pd.DataFrame({"id": [f"r{i}" for i in range(len(y))], "y": y}), labels=["y"], attributes=[]
    )
    return tensor_data(np.zeros((len(y), 3), np.float32), cohort, "y", g, ("a", "b"))


def _strategy(name: str, **fields):
    torch.manual_seed(0)
    return make_strategy(StrategySpec(name=name, **fields), Task(2, "bce"), 3, _train())


def test_resample_draws_rows_in_proportion_to_the_cell_weights():
    """Cells (group, label): (0,0) 1 row, (0,1) 2 rows, (1,0) 2 rows, (1,1) 1 row; each of the
    4 cells gets mass 1/4, shared by its rows: 1/4, 1/8, 1/8, 1/8, 1/4, 1/8."""
    probs = _strategy("resample").sampling_probs(_train())
    assert probs.tolist() == pytest.approx([1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 4, 1 / 8])
    by_group = _strategy("resample", by_label=False).sampling_probs(_train())
    assert by_group.tolist() == pytest.approx([1 / 6] * 6)  # two groups of 3 rows: uniform


def _losses(strategy, z, logits):
    y = torch.as_tensor(Y)
    g = torch.as_tensor(G)
    return strategy.loss(z, logits, y, g, None)


def test_multitask_loss_is_task_plus_aux_weight_times_group_loss():
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    logits = torch.randn(6, 1, generator=torch.Generator().manual_seed(2))
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], torch.as_tensor(Y, dtype=torch.float32))
    base = _strategy("multitask", aux_weight=0.0)
    assert float(_losses(base, z, logits).detach()) == pytest.approx(float(bce), rel=1e-6)
    losses = {}
    for weight in (1.0, 2.5):
        strategy = _strategy("multitask", aux_weight=weight)
        strategy.load_state_dict(base.state_dict())  # the same group head
        losses[weight] = float(_losses(strategy, z, logits).detach())
    group_loss = losses[1.0] - float(bce)
    assert group_loss > 0
    assert losses[2.5] == pytest.approx(float(bce) + 2.5 * group_loss, rel=1e-5)


@pytest.mark.parametrize("lam", [1.0, 3.0])
def test_adversarial_reverses_and_scales_the_group_gradient_reaching_the_features(lam):
    """Same group head: the adversary's gradient on the features is -lambda x multitask's, while
    the group head itself learns as in multitask (its own gradient is not reversed)."""
    adversarial = _strategy("adversarial", adv_lambda=lam)
    multitask = _strategy("multitask", aux_weight=1.0)
    multitask.load_state_dict(adversarial.state_dict())
    logits = torch.zeros(6, 1)  # the task loss does not depend on z: only the group branch does
    grads = {}
    for name, strategy in (("adv", adversarial), ("mt", multitask)):
        z = torch.randn(6, 3, generator=torch.Generator().manual_seed(3)).requires_grad_()
        strategy.zero_grad()
        _losses(strategy, z, logits).backward()
        grads[name] = (z.grad.clone(), [p.grad.clone() for p in strategy.parameters()])
    assert grads["mt"][0].abs().sum() > 0
    assert torch.allclose(grads["adv"][0], -lam * grads["mt"][0], atol=1e-6)
    for head_adv, head_mt in zip(grads["adv"][1], grads["mt"][1]):
        assert torch.allclose(head_adv, head_mt, atol=1e-6)
