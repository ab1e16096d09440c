"""Strategies: each one learns (images and embeddings), and each mechanism matches its formula exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from fairmed.data.cohort import Cohort
from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.errors import SpecError
from fairmed.train import STRATEGIES, StrategySpec, fit_predict, tensor_data
from fairmed.train.strategies import (
    GroupDRO,
    Task,
    balancing_weights,
    cell_codes,
    gce_loss,
    grad_reverse,
    make_strategy,
    per_sample_loss,
)

FAST = {"epochs": 3, "batch_size": 32, "lr": 3e-3, "scheduler": "none"}


@pytest.fixture(scope="module")
def images() -> tuple[Cohort, Cohort, Cohort]:
    c = generate(SynthConfig(n=700, size=16, noise=2.0), seed=1)
    return c.subset(np.arange(450)), c.subset(np.arange(450, 575)), c.subset(np.arange(575, 700))


@pytest.fixture(scope="module")
def embeddings() -> tuple[Cohort, Cohort, Cohort]:
    c = generate_embeddings(EmbeddingSynthConfig(n=900, dim=32), seed=2)
    return c.subset(np.arange(600)), c.subset(np.arange(600, 750)), c.subset(np.arange(750, 900))


def _test_auc(preds: pd.DataFrame) -> float:
    test = preds[preds["split"] == "test"]
    return roc_auc_score(test["y_true"], test["y_score"])


@pytest.mark.parametrize("name", STRATEGIES[:6])  # the MEDFAIR methods: test_train_methods.py
def test_each_strategy_learns_images(images, name):
    train, val, test = images
    preds = fit_predict(
        train,
        val,
        test,
        model={"arch": "small_cnn", "image_size": 16, "channels": [8, 16]},
        strategy=name,
        config=FAST,
        groups="fst:123-456",
        seed=0,
    )
    assert set(preds["split"]) == {"val", "test"} and len(preds) == len(val) + len(test)
    assert _test_auc(preds) > 0.65


@pytest.mark.parametrize("name", STRATEGIES[:6])  # the MEDFAIR methods: test_train_methods.py
def test_each_strategy_learns_embeddings(embeddings, name):
    train, val, test = embeddings
    preds = fit_predict(train, val, test, model="mlp", strategy=name, config=FAST, groups="race", seed=0)
    assert _test_auc(preds) > 0.7
    assert list(preds.columns[:4]) == ["split", "id", "y_true", "y_score"]
    assert {"race", "sex", "age", "insurance"} <= set(preds.columns)


def test_gradient_reversal_is_exact():
    x = torch.randn(5, 3, requires_grad=True)
    upstream = torch.randn(5, 3)
    out = grad_reverse(x, 5.0)
    assert torch.equal(out, x)
    out.backward(upstream)
    assert torch.equal(x.grad, -5.0 * upstream)


def test_reweight_equalises_cell_mass_exactly():
    # groups a,a,a,b | labels 0,0,1,1 and one row without a group (its own cell)
    y = torch.tensor([0, 0, 1, 1, 0])
    g = torch.tensor([0, 0, 0, 1, -1])
    cells = cell_codes(y, g, n_groups=2, n_classes=2, by_label=True)
    assert cells.tolist() == [0, 0, 1, 3, 4]
    w = balancing_weights(cells)
    # 5 rows, K = 4 cells -> each cell holds 5/4: (a,0) two rows of 5/8, the others one row of 5/4
    assert w.tolist() == pytest.approx([5 / 8, 5 / 8, 5 / 4, 5 / 4, 5 / 4])
    mass = torch.zeros(5, dtype=torch.float64).index_add_(0, cells, w.double())
    assert mass[mass > 0].tolist() == pytest.approx([5 / 4] * 4)
    # with base weights the weighted mass is what is equalised
    base = torch.tensor([1.0, 3.0, 2.0, 2.0, 2.0])
    wb = balancing_weights(cells, base)
    massb = torch.zeros(5, dtype=torch.float64).index_add_(0, cells, wb.double())
    assert massb[massb > 0].tolist() == pytest.approx([10 / 4] * 4)


def test_groupdro_step_matches_sagawa():
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    g = torch.tensor([0, 0, 1, 1, 1, 1])
    train = tensor_data(
        np.zeros((6, 2), np.float32),
        Cohort(pd.DataFrame({"id": list("abcdef"), "y": y.numpy()}), labels=["y"], attributes=[]),
        "y",
        g.numpy(),
        ("a", "b"),
    )
    spec = StrategySpec(name="groupdro", by_label=False, dro_eta=0.5, dro_adjust=2.0)
    dro = make_strategy(spec, Task(2, "bce"), 2, train)
    assert isinstance(dro, GroupDRO) and dro.counts.tolist() == [2.0, 4.0]
    per = torch.tensor([1.0, 3.0, 0.5, 0.5, 1.0, 2.0])
    idx = torch.tensor([0, 0, 1, 1, 1, 1])
    loss = dro.robust_loss(per, idx)
    l0, l1 = 2.0, 1.0  # per-group mean losses
    a0, a1 = l0 + 2.0 / math.sqrt(2), l1 + 2.0 / math.sqrt(4)
    q0, q1 = 0.5 * math.exp(0.5 * a0), 0.5 * math.exp(0.5 * a1)
    q0, q1 = q0 / (q0 + q1), q1 / (q0 + q1)
    assert dro.q.tolist() == pytest.approx([q0, q1], rel=1e-6)
    assert float(loss) == pytest.approx(q0 * l0 + q1 * l1, rel=1e-6)
    # an absent group's loss is 0 and its weight only shrinks relative to the others
    dro.eval()
    before = dro.q.clone()
    dro.robust_loss(torch.tensor([1.0]), torch.tensor([0]))
    assert torch.equal(dro.q, before)  # no update outside training


def test_gce_matches_formula_and_limits():
    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    y = torch.tensor([1, 0, 0])
    p = torch.sigmoid(logits[:, 0])
    p_true = torch.where(y == 1, p, 1 - p)
    q = 0.7
    assert torch.allclose(gce_loss(logits, y, q), (1 - p_true**q) / q)
    # multi-class, and q -> 0 recovers cross-entropy, q = 1 is 1 - p_y
    z = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]])
    t = torch.tensor([2, 1])
    py = torch.softmax(z, 1)[torch.arange(2), t]
    assert torch.allclose(gce_loss(z, t, 1.0), 1 - py)
    ce = per_sample_loss(z, t, "ce")
    assert torch.allclose(gce_loss(z, t, 1e-5), ce, atol=1e-4)


def test_group_strategies_need_two_groups(embeddings):
    train, val, test = embeddings
    with pytest.raises(SpecError, match="at least two groups"):
        fit_predict(
            train.filter(race="White"), val, test, model="mlp", strategy="adversarial", config=FAST,
            groups="race", seed=0,
        )  # fmt: skip
    allowed = {"name": "multitask", "single_group": "allow"}
    preds = fit_predict(
        train.filter(race="White"),
        val,
        test,
        model="mlp",
        strategy=allowed,
        config=FAST,
        groups="race",
        seed=0,
    )
    assert _test_auc(preds) > 0.7


def test_rows_without_group_are_trained_and_predicted(embeddings):
    train, val, test = embeddings
    # every third training row loses its sex: those rows form the "(no group)" cell
    masked = train.with_columns(sex=np.where(np.arange(len(train)) % 3 == 0, None, train.table["sex"]))
    preds, trained = fit_predict(
        masked, val, test, model="mlp", strategy="groupdro", config=FAST, groups="sex", seed=0,
        return_model=True,
    )  # fmt: skip
    assert len(preds) == len(val) + len(test)
    assert len(trained.fit.strategy_state["q"]) == 6  # (female, male, no group) x (label 0, 1)
    assert len(trained.fit.train_losses) == len(masked)
    preds2 = fit_predict(
        masked, val, test, model="mlp", strategy="resample", config=FAST, groups="sex", seed=0
    )
    assert _test_auc(preds2) > 0.7


def test_multiclass_predictions(images):
    c = generate(SynthConfig(n=300, size=16, n_classes=3), seed=3)
    preds = fit_predict(
        c.subset(np.arange(200)),
        c.subset(np.arange(200, 250)),
        c.subset(np.arange(250, 300)),
        model={"arch": "small_cnn", "image_size": 16, "channels": [8]},
        strategy={"name": "reweight", "loss": "gce"},
        config={"epochs": 1},
        groups="sex",
        seed=0,
    )
    probs = preds[["p_0", "p_1", "p_2"]].to_numpy()
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (preds["y_pred"].to_numpy() == probs.argmax(1)).all()
    assert "y_score" not in preds.columns


@given(
    cells=st.lists(st.integers(0, 7), min_size=1, max_size=60),
    scale=st.floats(0.1, 10.0),
)
@settings(max_examples=60, deadline=None)
def test_balancing_weights_give_every_cell_equal_mass(cells, scale):
    c = torch.tensor(cells)
    base = torch.linspace(0.5, 2.0, len(cells), dtype=torch.float64) * scale
    w = balancing_weights(c, base).double()
    mass = torch.zeros(8, dtype=torch.float64).index_add_(0, c, w)
    present = mass[torch.bincount(c, minlength=8) > 0]
    assert torch.allclose(present, torch.full_like(present, float(base.sum()) / len(present)), rtol=1e-5)
