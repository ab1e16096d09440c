"""The sex-ratio paper's heads and optimisation: hidden layers of the task head (shared or not), group
heads with hidden layers, and the alternating three-update adversarial step against a hand-made
computation of the same three SGD updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairmed.errors import SpecError
from fairmed.models.backbones import build_head_model, build_model
from fairmed.models.spec import ModelSpec
from fairmed.studies.sex_ratio import optimisation_record
from fairmed.train import StrategySpec, Task, TrainConfig, fit_predict, make_strategy
from fairmed.train.data import TensorData
from fairmed.train.loop import Stepper

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAM, LR = 5.0, 0.1


def _layers(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.modules() if not isinstance(m, nn.Sequential)]


def test_task_head_hidden_layers_and_activation():
    model = build_model(
        ModelSpec(arch="mlp", hidden=6, head_hidden=[4, 3], head_activation="tanh"), 1, in_dim=5
    )
    assert _layers(model.head) == ["Dropout", "Linear", "Tanh", "Linear", "Tanh", "Linear"]
    widths = [(m.in_features, m.out_features) for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert widths == [(6, 4), (4, 3), (3, 1)]
    assert model.feature_dim == 6  # the group heads read the backbone's features
    assert model(torch.zeros(2, 5)).shape == (2, 1)


def test_shared_hidden_layers_move_into_the_features():
    """head_shared: features -> 256-style hidden layer -> (task output | group output): three FC layers."""
    spec = ModelSpec(arch="mlp", hidden=6, head_hidden=[4], head_shared=True)
    model = build_model(spec, 1, in_dim=5)
    assert model.feature_dim == 4
    assert _layers(model.features) == ["Linear", "ReLU", "Linear", "ReLU"]
    assert _layers(model.head) == ["Dropout", "Linear"]
    frozen = build_head_model(spec.model_copy(update={"arch": "resnet18", "frozen": True}), 7, 1)
    assert frozen.feature_dim == 4 and _layers(frozen.features) == ["Linear", "ReLU", "Linear", "ReLU"]
    data = _data()
    strategy = make_strategy(
        StrategySpec(name="multitask", aux_hidden=[3]), Task(2, "bce"), model.feature_dim, data
    )
    widths = [
        (m.in_features, m.out_features) for m in strategy.group_head.modules() if isinstance(m, nn.Linear)
    ]
    assert widths == [(4, 3), (3, 2)]


def test_head_options_refuse_bad_values_in_one_line():
    with pytest.raises(SpecError, match="head_shared: true needs head_hidden"):
        ModelSpec(head_shared=True)
    with pytest.raises(SpecError, match="head_hidden: widths must be positive"):
        ModelSpec(head_hidden=[0])
    with pytest.raises(SpecError, match="aux_hidden: widths must be positive"):
        StrategySpec(aux_hidden=[4, -1])
    assert StrategySpec(aux_hidden=8).aux_hidden == [8] and StrategySpec(aux_hidden=0).aux_hidden == []
    model = build_model(ModelSpec(arch="mlp", hidden=4, head_hidden=[3]), 1, in_dim=2)
    domainind = make_strategy(StrategySpec(name="domainind"), Task(2, "bce"), 4, _data())
    with pytest.raises(SpecError, match="head_shared: true to keep them"):
        domainind.attach(model)


def _data() -> TensorData:
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])
    return TensorData(x, y, g, np.array([f"r{i}" for i in range(8)]), group_names=("a", "b"))


def _stepped(mode: str):
    """One Stepper step of ``adversarial`` on all 8 rows (plain SGD); the model and strategy before and after."""
    data = _data()
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch="mlp", hidden=3), 1, in_dim=2)
    strategy = make_strategy(
        StrategySpec(name="adversarial", adv_lambda=LAM, adv_mode=mode), Task(2, "bce"), 3, data
    )
    before = {k: v.detach().clone() for k, v in [*model.state_dict().items(), *strategy.state_dict().items()]}
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=LR, batch_size=8, device="cpu", amp="off")
    loss = Stepper.build(model, strategy, data, cfg).step(torch.arange(8))
    return data, before, model, strategy, loss


def test_alternating_step_is_three_sgd_updates_each_on_its_own_part():
    """By hand: (1) task head on L_c(z); (2) group head on L_bp(z); (3) encoder on
    L_c - lambda L_bp through the two updated heads; each part moves once, the others not at all."""
    data, p, model, strategy, loss = _stepped("alternating")
    x, y, g = data.x, data.y.float(), data.g

    def encoder(w, b):
        return F.relu(F.linear(x, w, b))

    def task_loss(z, w, b):
        return F.binary_cross_entropy_with_logits(F.linear(z, w, b)[:, 0], y)

    def group_loss(z, w, b):
        return F.cross_entropy(F.linear(z, w, b), g)

    enc = [p["features.0.weight"].requires_grad_(), p["features.0.bias"].requires_grad_()]
    head = [p["head.1.weight"].requires_grad_(), p["head.1.bias"].requires_grad_()]
    bias = [p["group_head.weight"].requires_grad_(), p["group_head.bias"].requires_grad_()]
    z0 = encoder(*enc).detach()
    l_c = task_loss(z0, *head)
    head1 = [t - LR * d for t, d in zip(head, torch.autograd.grad(l_c, head))]
    l_bp = group_loss(z0, *bias)
    bias1 = [t - LR * d for t, d in zip(bias, torch.autograd.grad(l_bp, bias))]
    z = encoder(*enc)
    l_enc = task_loss(z, *[t.detach() for t in head1]) - LAM * group_loss(z, *[t.detach() for t in bias1])
    enc1 = [t - LR * d for t, d in zip(enc, torch.autograd.grad(l_enc, enc))]

    got = {**model.state_dict(), **strategy.state_dict()}
    names = [
        "features.0.weight",
        "features.0.bias",
        "head.1.weight",
        "head.1.bias",
        "group_head.weight",
        "group_head.bias",
    ]
    for name, want in zip(names, [*enc1, *head1, *bias1]):
        assert torch.allclose(got[name], want.detach(), atol=1e-6), name
        assert not torch.equal(got[name], p[name].detach()), f"{name} did not move"
    assert float(loss) == pytest.approx(float((l_c + l_bp).detach()), rel=1e-6)


def test_reversal_and_alternating_steps_differ_only_in_the_encoder_under_plain_sgd():
    """Both modes give the heads the same first-order gradients on the same features, so one SGD
    step moves them alike; the encoder differs: alternating reads the heads after their update."""
    _, _, rev_model, rev_strategy, _ = _stepped("reversal")
    _, _, alt_model, alt_strategy, _ = _stepped("alternating")
    assert torch.allclose(rev_model.head[1].weight, alt_model.head[1].weight, atol=1e-7)
    assert torch.allclose(rev_strategy.group_head.weight, alt_strategy.group_head.weight, atol=1e-7)
    assert not torch.allclose(rev_model.features[0].weight, alt_model.features[0].weight)


def test_alternating_trains_end_to_end_and_the_run_records_it():
    from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings

    cohort = generate_embeddings(EmbeddingSynthConfig(n=300, dim=8, preset="cxr"), seed=0)
    parts = cohort.subset(range(0, 180)), cohort.subset(range(180, 240)), cohort.subset(range(240, 300))
    model = {"arch": "mlp", "hidden": 8, "head_hidden": [4], "head_shared": True}
    strategy = StrategySpec(name="adversarial", adv_mode="alternating", aux_hidden=[4], aux_activation="tanh")
    preds = fit_predict(*parts, model=model, strategy=strategy, config={"epochs": 2}, groups="sex", seed=0)
    assert len(preds) == 120 and preds["y_score"].between(0, 1).all()
    assert optimisation_record(model, strategy) == {
        "adv_mode": "alternating",
        "task_head": "4>out (shared)",
        "group_head": "4>out",
    }
    assert optimisation_record(None, StrategySpec(name="erm")) == {
        "adv_mode": "",
        "task_head": "out",
        "group_head": "",
    }


def test_report_titles_name_the_adversarial_optimisation_that_ran():
    import pandas as pd

    from fairmed.report.sections.sex_ratio import method_titles
    from fairmed.studies.sex_ratio import what_ran

    preds = pd.DataFrame(
        {
            "method": ["erm", "adversarial", "adversarial", "adversarial_reversal"],
            "adv_mode": ["", "alternating", "alternating", "reversal"],
            "task_head": ["out"] * 4,
            "group_head": ["", "out", "out", "out"],
        }
    )
    ran = what_ran(preds)
    assert ran["adv_mode"].tolist() == ["", "alternating", "reversal"]
    titles = method_titles(ran)
    assert titles["adversarial"] == "adversarial (alternating)"
    assert titles["adversarial_reversal"] == "adversarial (gradient reversal)"
    assert titles["erm"] == "single task (ERM)"
    assert what_ran(preds.drop(columns="adv_mode")) is None  # Predictions written before the record
