"""The loop options the paper profiles need: select=last, Nesterov SGD, step size, class-balanced
sampling and the SCP code's ``skin`` augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairmed.models.backbones import build_model
from fairmed.models.spec import ModelSpec
from fairmed.train.augment import CUTOUT, skin_augment
from fairmed.train.config import StrategySpec, TrainConfig
from fairmed.train.data import TensorData
from fairmed.train.loop import _optimizer, _scheduler, class_balanced_probs, fit
from fairmed.train.strategies import Task, make_strategy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n=40, seed=0, size=8) -> TensorData:
    rng = np.random.default_rng(seed)
    y = np.array([0] * (n - 10) + [1] * 10)
    x = rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)
    return TensorData(
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        g=torch.from_numpy(rng.integers(0, 2, n)),
        ids=np.array([f"s{i}" for i in range(n)]),
        group_names=("a", "b"),
    )


def test_class_balanced_probs_by_hand():
    data = _data()  # 30 rows of class 0, 10 of class 1
    p = class_balanced_probs(data)
    assert p[:30].tolist() == pytest.approx([1 / 60] * 30)  # 1/30 per row, normalised over 2 classes
    assert p[30:].tolist() == pytest.approx([1 / 20] * 10)
    assert float(p.sum()) == pytest.approx(1.0)


def test_nesterov_sgd_and_step_size_reach_torch():
    param = [torch.nn.Parameter(torch.zeros(2))]
    config = TrainConfig(
        optimizer="sgd", lr=0.01, nesterov=True, weight_decay=1e-5, scheduler="step", step_size=100
    )
    opt = _optimizer(param, config)
    assert opt.param_groups[0]["nesterov"] is True and opt.param_groups[0]["weight_decay"] == 1e-5
    assert _scheduler(opt, config).step_size == 100
    assert _scheduler(opt, config.model_copy(update={"step_size": None, "epochs": 9})).step_size == 3


def test_select_last_keeps_the_final_epoch():
    data = _data()
    torch.manual_seed(0)
    task = Task.resolve(2, StrategySpec())
    model = build_model(ModelSpec(arch="small_cnn", channels=[4]), task.n_out)
    strategy = make_strategy(StrategySpec(), task, model.feature_dim, data)
    config = TrainConfig(epochs=3, batch_size=16, device="cpu", select="last", scheduler="none", lr=0.05)
    result = fit(model, strategy, data, data, config, "t")
    assert result.best_epoch == 3 and result.select == "last"
    assert result.history["score"].tolist() == [1.0, 2.0, 3.0]
    for key, value in model.state_dict().items():  # the model holds the final state
        torch.testing.assert_close(value, result.state[key])


def test_skin_augment_is_seeded_and_changes_images():
    px = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    a = skin_augment(px, torch.Generator().manual_seed(5))
    b = skin_augment(px, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global torch RNG is left alone
    assert torch.equal(a, b) and a.shape == px.shape and a.dtype == torch.uint8
    assert not torch.equal(a, px)
    # the cutout leaves a zero square of at least (CUTOUT/2)^2 pixels in every image (a corner at worst)
    zeros = (a == 0).all(-1).flatten(1).sum(1)
    assert bool((zeros >= (CUTOUT // 2) ** 2).all())


def test_skin_augment_in_the_loop_inputs():
    data = _data(size=32)
    idx = torch.arange(4)
    x = data.inputs(idx, "skin", torch.Generator().manual_seed(1))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert not torch.equal(x, data.inputs(idx))
