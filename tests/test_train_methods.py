"""The MEDFAIR methods (issue 19): each mechanism against its formula on tiny tensors, and each
method through fit_predict on embeddings and images."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.errors import SpecError
from fairmed.models.backbones import Classifier, build_model
from fairmed.models.spec import ModelSpec
from fairmed.train import STRATEGIES, StrategySpec, TrainConfig, as_spec, fit_predict
from fairmed.train.data import TensorData
from fairmed.train.loop import Stepper, autocast_context
from fairmed.train.strategies import (
    LAFTR,
    LNL,
    SAM,
    SWA,
    CFair,
    DomainInd,
    LossValley,
    Task,
    end_regulariser,
    gsam_direction,
    make_strategy,
    sam_perturbation,
)
from fairmed.train.strategies.representation import ODR, gaussian_kl
from fairmed.train.strategies.robust import GSAM

METHODS = STRATEGIES[6:]


def _data(y, g, x=None, names=("a", "b")) -> TensorData:
    y, g = torch.as_tensor(y), torch.as_tensor(g)
    x = torch.zeros(len(y), 2) if x is None else torch.as_tensor(x, dtype=torch.float32)
    return TensorData(x, y, g, np.arange(len(y)), group_names=names)


def _strategy(name: str, data: TensorData, dim: int = 3, **fields):
    return make_strategy(StrategySpec(name=name, **fields), Task(2, "bce"), dim, data)


# ------------------------------------------------------------------ robust optimisation
def test_sam_perturbation_on_a_quadratic():
    w = torch.tensor([3.0, -4.0])
    g = 1.0 * w  # gradient of 0.5 |w|^2
    (e,) = sam_perturbation([w], [g], rho=0.5, adaptive=False)
    assert e.tolist() == pytest.approx([0.3, -0.4])  # rho g / ||g||, ||g|| = 5
    (ea,) = sam_perturbation([w], [g], rho=0.5, adaptive=True)
    norm = math.sqrt(9.0**2 + 16.0**2)  # || |w| * g ||
    assert ea.tolist() == pytest.approx([0.5 * 27 / norm, -0.5 * 64 / norm])  # rho w^2 g / norm


class _Quadratic(nn.Module):
    """A loss ``0.5 sum(c w^2)`` on a parameter of the strategy (the model gets zero gradient)."""

    def quad_init(self) -> None:
        self.w = nn.Parameter(torch.tensor([3.0, -4.0]))
        self.register_buffer("c", torch.tensor([1.0, 2.0]))

    def loss(self, z, logits, y, g, w):
        return 0.5 * (self.c * self.w**2).sum() + 0.0 * logits.sum()


class QuadSAM(_Quadratic, SAM):
    def __init__(self, *a):
        SAM.__init__(self, *a)
        self.quad_init()


class QuadGSAM(_Quadratic, GSAM):
    def __init__(self, *a):
        GSAM.__init__(self, *a)
        self.quad_init()


def _one_step(cls, scaled: bool = False, **fields) -> torch.Tensor:
    data = _data([0, 1, 0, 1], [0, 0, 1, 1])
    strat = cls(StrategySpec(name="sam", **fields), Task(2, "bce"), 2, data)
    model = build_model(ModelSpec(arch="mlp", hidden=0), 1, in_dim=2)
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, batch_size=4, device="cpu", amp="off")
    stepper = Stepper.build(model, strat, data, cfg)
    if scaled:  # float16 AMP's loss scaling (a GPU without bfloat16), here on the CPU
        stepper.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    stepper.step(torch.arange(4))
    return strat.w.detach()


def test_sam_step_descends_the_gradient_at_the_ascended_point():
    w, c, rho = np.array([3.0, -4.0]), np.array([1.0, 2.0]), 0.05
    g = c * w
    e = rho * g / np.linalg.norm(g)
    expected = w - 0.1 * c * (w + e)
    got = _one_step(QuadSAM, sam_rho=rho, sam_adaptive=False)
    assert got.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    scaled = _one_step(QuadSAM, scaled=True, sam_rho=rho, sam_adaptive=False)
    assert scaled.tolist() == pytest.approx(expected.tolist(), rel=1e-5)  # the ascent is unscaled


def test_gsam_step_removes_alpha_times_the_orthogonal_part():
    w, c, rho, alpha = np.array([3.0, -4.0]), np.array([1.0, 2.0]), 0.3, 0.5
    g = c * w
    gp = c * (w + rho * g / np.linalg.norm(g))
    perp = g - (g @ gp) / (gp @ gp) * gp
    expected = w - 0.1 * (gp - alpha * perp)
    for scaled in (False, True):
        got = _one_step(QuadGSAM, scaled=scaled, gsam_rho=rho, gsam_alpha=alpha)
        assert got.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    (d,) = gsam_direction([torch.tensor(g)], [torch.tensor(gp)], 0.0)
    assert d.tolist() == pytest.approx(gp.tolist())  # alpha 0: SAM


# ---------------------------------------------------------------------- weight averaging
def _fake_stepper(model: nn.Module, data: TensorData, epochs: int, lr: float = 0.01):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return SimpleNamespace(
        model=model, opt=opt, epochs=epochs, data=data, batch_size=2,
        autocast=lambda: autocast_context(torch.device("cpu"), "off"),
    )  # fmt: skip


def test_swa_weights_are_the_mean_of_the_snapshots_and_bn_is_recomputed():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 1.0], [7.0, 3.0]])
    data = _data([0, 1, 0, 1], [0, 0, 1, 1], x)
    model = Classifier(nn.BatchNorm1d(2), nn.Linear(2, 1), 2)
    swa = _strategy("swa", data, dim=2, swa_start=2, swa_lr=0.001, swa_anneal_epochs=2)
    assert isinstance(swa, SWA)
    stepper = _fake_stepper(model, data, epochs=4)
    snapshots = []
    for epoch in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float(epoch))
        if epoch >= 2:
            snapshots.append([p.detach().clone() for p in model.parameters()])
        swa.end_epoch(epoch, stepper, {})
    assert stepper.opt.param_groups[0]["lr"] == pytest.approx(0.001)  # annealed to swa_lr
    state = swa.final_state(stepper)
    for p, *snaps in zip(model.parameters(), *snapshots):
        assert torch.allclose(p, torch.stack(snaps).mean(0))
    assert torch.allclose(state["features.running_mean"], x.mean(0))
    # batches of 2 rows: the mean of the batches' unbiased variances (torch's update_bn rule)
    assert torch.allclose(state["features.running_var"], (x[:2].var(0) + x[2:].var(0)) / 2)


def test_swa_start_beyond_the_run_averages_the_last_epoch():
    data = _data([0, 1], [0, 1])
    swa = _strategy("swa", data, dim=2)  # swa_start 7 (MEDFAIR)
    assert swa.start(epochs=3) == 3 and swa.start(epochs=20) == 7


def test_swad_loss_valley_averages_the_valley_only():
    valley = LossValley(n_converge=3, n_tolerance=2, ratio=0.05)
    metrics = [5.0, 4.0, 3.0, 3.1, 3.05, 3.2, 10.0, 10.0, 3.0]
    for k, m in enumerate(metrics, start=1):
        valley.update([torch.tensor([float(k)])], m)
    # converged at segment 3 (3 <= 3.1, 3.05), threshold 3.05 * 1.05; 7 and 8 end the valley
    assert valley.threshold == pytest.approx(3.05 * 1.05) and valley.dead
    assert valley.result()[0].item() == pytest.approx(np.mean([3, 4, 5, 6]))
    never = LossValley(3, 2, 0.05)
    for k, m in enumerate([3.0, 2.0, 1.0], start=1):
        never.update([torch.tensor([float(k)])], m)
    assert never.result()[0].item() == 3.0  # never converged: the last segment


def test_swad_segment_is_the_mean_of_the_steps_weights(embeddings):
    train, val, test = embeddings
    _, trained = fit_predict(
        train, val, test, model={"arch": "mlp", "hidden": 8}, strategy="swad",
        config={"epochs": 1, "batch_size": 100, "optimizer": "sgd", "lr": 0.1}, groups="sex",
        seed=0, return_model=True,
    )  # fmt: skip
    seg = trained.strategy.valley.last
    assert seg is not None and len(seg) == len(list(trained.model.parameters()))
    # one epoch, never converged: the final model is that epoch's segment (mean over its 2 steps)
    for p, s in zip(trained.model.parameters(), seg):
        assert torch.allclose(p.detach(), s)


# ---------------------------------------------------------------------- representation
def test_domainind_trains_each_group_head_and_sums_them_at_inference():
    data = _data([0, 1, 1], [0, 1, -1])
    model = build_model(ModelSpec(arch="mlp", hidden=0), 1, in_dim=2)
    strat = _strategy("domainind", data, dim=2)
    assert isinstance(strat, DomainInd)
    strat.attach(model)
    strat.attach(model)  # idempotent
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # group a, group b
        model.head.linear.bias.copy_(torch.tensor([0.5, -1.0]))
    z = torch.tensor([[1.0, 1.0], [2.0, -1.0], [0.0, 1.0]])
    per = torch.stack([z[:, 0] + 0.5, 2 * z[:, 1] - 1.0], 1)  # each head's logit
    assert torch.allclose(model(z)[:, 0], per.sum(1))  # the decision: sigmoid of the summed logits
    y = torch.tensor([0, 1, 1])
    chosen = torch.stack([per[0, 0], per[1, 1], per[2].sum()])  # own head; no group: the sum
    expected = F.binary_cross_entropy_with_logits(chosen, y.float())
    got = strat.loss(z, model.head(z), y, data.g, None)
    assert float(got.detach()) == pytest.approx(float(expected), rel=1e-6)


def test_end_regulariser_matches_the_pairwise_definition():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(7, 4, generator=gen)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1])
    g = torch.tensor([0, 0, 1, 1, 2, -1, 2])
    d = F.normalize(z, dim=1)
    same: dict[int, float] = {}
    m_same = m_cross = 0
    par = 0.0
    for i in range(7):
        for j in range(i):
            if g[i] < 0 or g[j] < 0:
                continue
            gram = float(d[i] @ d[j])
            if g[i] == g[j]:
                same[int(g[i])] = same.get(int(g[i]), 0.0) + gram
                m_same += 1
            elif y[i] == y[j]:
                par += (1 + gram) / 2
                m_cross += 1
    r_orth, r_par = end_regulariser(z, y, g)
    assert float(r_orth) == pytest.approx(sum(abs(v) for v in same.values()) / m_same, rel=1e-5)
    assert float(r_par) == pytest.approx(1 - par / m_cross, rel=1e-5)
    end = _strategy("end", _data(y, g, names=("a", "b", "c")), dim=4, end_alpha=0.3, end_beta=0.7)
    logits = torch.zeros(7, 1)
    task = F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    assert float(end.loss(z, logits, y, g, None)) == pytest.approx(
        float(task + 0.3 * r_orth + 0.7 * r_par), rel=1e-5
    )


def test_odr_kl_and_schedule_match_the_formulas():
    mean, log_var, prior = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, -1.0]]), torch.tensor([1.0, 0.0])
    hand = 0.5 * np.mean([math.exp(0.5) + 0 - 1 - 0.5, math.exp(-1.0) + 4 - 1 + 1.0])
    assert float(gaussian_kl(mean, log_var, prior)[0]) == pytest.approx(hand)
    odr = _strategy("odr", _data([0, 1], [0, 1]), dim=2, odr_lambda_e=0.2, odr_gamma_e=0.5, odr_step_size=4)
    assert isinstance(odr, ODR) and odr.weights()[0] == pytest.approx(0.2)
    odr.end_epoch(8, None, {})
    assert odr.weights() == pytest.approx((0.2 * 0.5**2, 0.1 * 0.1**2))
    assert odr.prior_t @ odr.prior_s == 0  # orthogonal prior means


# ------------------------------------------------------------------------- adversarial
def _grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t if t is not None else None for t in torch.autograd.grad(loss, tensors, allow_unused=True)]


def test_laftr_audit_matches_the_weighted_l1_and_its_gradient_is_reversed():
    y = torch.tensor([0, 0, 1, 1, 1, 0, 1, 0])
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])  # cells (a, y): (0,0) 2, (0,1) 1, (1,0) 2, (1,1) 3
    data = _data(y, g)
    laftr = _strategy("laftr", data, dim=3, fair_coeff=2.0, class_coeff=0.5)
    assert isinstance(laftr, LAFTR)
    counts = {(0, 0): 2, (0, 1): 1, (1, 0): 2, (1, 1): 3}
    z = torch.randn(8, 3, generator=torch.Generator().manual_seed(1)).requires_grad_()
    p = torch.sigmoid(laftr.adversary(torch.cat([z, y.view(-1, 1).float()], 1)))[:, 0].detach()
    hand = (
        sum(8 / (4 * counts[(int(a), int(b))]) * abs(float(a) - float(pi)) for a, b, pi in zip(g, y, p)) / 8
    )
    assert laftr.audit_loss(z, y, g).item() == pytest.approx(hand, rel=1e-5)
    # eqopp audits the positive label's cells only; dp the groups
    eqopp = _strategy("laftr", data, laftr_variant="eqopp")
    assert eqopp.cell_weight.tolist() == pytest.approx([0, 4 / (2 * 1), 0, 4 / (2 * 3)])
    dp = _strategy("laftr", data, laftr_variant="dp")
    assert dp.cell_weight.tolist() == pytest.approx([8 / (2 * 3), 8 / (2 * 5)])
    # the adversary descends fair_coeff * audit; the features get its gradient negated
    logits = torch.zeros(8, 1)
    total = laftr.loss(z, logits, y, g, None)
    gz, gw = _grads(total, z, laftr.adversary[0].weight)
    ref = 2.0 * laftr.audit_loss(z, y, g)
    rz, rw = _grads(ref, z, laftr.adversary[0].weight)
    assert torch.allclose(gz, -rz, atol=1e-6) and torch.allclose(gw, rw, atol=1e-6)
    task = 0.5 * F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    assert total.item() == pytest.approx((task + ref).item(), rel=1e-5)


def test_laftr_refuses_other_than_two_groups():
    with pytest.raises(SpecError, match="exactly two groups"):
        _strategy("laftr", _data([0, 1, 0], [0, 1, 2], names=("a", "b", "c")))


def test_cfair_balanced_losses_and_reversed_gradient():
    y = torch.tensor([0, 0, 0, 1])
    g = torch.tensor([0, 1, 1, 0])
    cfair = _strategy("cfair", _data(y, g), dim=3, cfair_mu=0.5)
    assert isinstance(cfair, CFair)
    assert cfair.class_weight.tolist() == pytest.approx([4 / (2 * 3), 4 / (2 * 1)])
    assert cfair.group_weight.flatten().tolist() == pytest.approx([3.0, 1.5, 1.0, 0.0])  # 1 / P(a | y)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(2)).requires_grad_()
    losses = []
    for j in (0, 1):
        rows = y == j
        ce = F.cross_entropy(cfair.adversaries[j](z[rows]), g[rows], reduction="none")
        wts = cfair.group_weight[j][g[rows]]
        losses.append((wts * ce).sum() / wts.sum())
    adv = torch.stack(losses).mean()
    assert cfair.adversarial_loss(z, y, g).item() == pytest.approx(adv.item(), rel=1e-5)
    logits = torch.tensor([[0.2], [-0.3], [1.0], [0.4]])
    per = F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), reduction="none")
    task = (per * cfair.class_weight[y]).mean()
    total = cfair.loss(z, logits, y, g, None)
    assert total.item() == pytest.approx((task + 0.5 * adv).item(), rel=1e-5)
    (gz,) = _grads(total, z)
    (rz,) = _grads(0.5 * cfair.adversarial_loss(z, y, g), z)
    assert torch.allclose(gz, -rz, atol=1e-6)


def test_lnl_entropy_and_reversed_bias_gradient():
    y = torch.tensor([0, 1, 1, 0])
    g = torch.tensor([0, 1, 0, -1])
    lnl = _strategy("lnl", _data(y, g), dim=3, lnl_lambda=0.3)
    assert isinstance(lnl, LNL)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(3)).requires_grad_()
    p = torch.softmax(lnl.bias_head(z), 1)
    neg_h = (p * p.log()).sum(1).mean()
    assert lnl.neg_entropy(z).item() == pytest.approx(neg_h.item(), rel=1e-5)
    ce = F.cross_entropy(lnl.bias_head(z[:3]), g[:3])  # the row without a group is left out
    logits = torch.zeros(4, 1)
    total = lnl.loss(z, logits, y, g, None)
    task = F.binary_cross_entropy_with_logits(logits[:, 0], y.float())
    assert total.item() == pytest.approx((task + 0.3 * neg_h + ce).item(), rel=1e-5)
    head_w = lnl.bias_head.weight
    gz, gw = _grads(total, z, head_w)
    (rz_ent,) = _grads(0.3 * lnl.neg_entropy(z), z)
    rz_ce, rw_ce = _grads(lnl.bias_loss(z, g), z, head_w)
    assert torch.allclose(gz, rz_ent - rz_ce, atol=1e-6)  # entropy as is, the bias CE reversed
    assert torch.allclose(gw, rw_ce, atol=1e-6)  # the head learns the group only (entropy held fixed)


# ------------------------------------------------------------------ through fit_predict
@pytest.fixture(scope="module")
def embeddings():
    c = generate_embeddings(EmbeddingSynthConfig(n=240, dim=8), seed=2)
    return c.subset(np.arange(160)), c.subset(np.arange(160, 200)), c.subset(np.arange(200, 240))


@pytest.fixture(scope="module")
def images():
    c = generate(SynthConfig(n=96, size=16, noise=2.0), seed=1)
    return c.subset(np.arange(64)), c.subset(np.arange(64, 80)), c.subset(np.arange(80, 96))


ONE_EPOCH = {"epochs": 1, "batch_size": 32}


@pytest.mark.parametrize(
    "strategy", [*METHODS, {"name": "swad", "balance": "resample"}, {"name": "sam", "balance": "reweight"}]
)
def test_every_method_trains_one_epoch_on_embeddings(embeddings, strategy):
    train, val, test = embeddings
    preds = fit_predict(
        train, val, test, model={"arch": "mlp", "hidden": 8}, strategy=strategy, config=ONE_EPOCH,
        groups="sex", seed=0,
    )  # fmt: skip
    assert len(preds) == len(val) + len(test)
    assert np.isfinite(preds["y_score"]).all() and preds["y_score"].between(0, 1).all()


@pytest.mark.parametrize("strategy", ["laftr", "domainind", "sam", {"name": "swad", "balance": "resample"}])
def test_one_image_run_per_family(images, strategy):
    train, val, test = images
    preds = fit_predict(
        train, val, test, model={"arch": "small_cnn", "image_size": 16, "channels": [4, 8]},
        strategy=strategy, config=ONE_EPOCH, groups="fst:123-456", seed=0,
    )  # fmt: skip
    assert len(preds) == len(val) + len(test) and np.isfinite(preds["y_score"]).all()


def test_balance_combines_or_is_refused_in_one_line():
    assert as_spec(StrategySpec, {"name": "swad", "balance": "resample"}, "strategy").balance == "resample"
    with pytest.raises(SpecError, match="already balances"):
        as_spec(StrategySpec, {"name": "resample", "balance": "resample"}, "strategy")


@pytest.mark.parametrize("name", ["sam", "gsam", "laftr", "odr", "swad"])
def test_methods_under_mixed_precision(embeddings, name):
    """The autocast path (bfloat16 on the CPU; the GPU's AMP takes the same code)."""
    train, val, test = embeddings
    config = {**ONE_EPOCH, "amp": "on", "device": "cpu"}
    preds = fit_predict(
        train,
        val,
        test,
        model={"arch": "mlp", "hidden": 8},
        strategy=name,
        config=config,
        groups="sex",
        seed=0,
    )
    assert np.isfinite(preds["y_score"]).all()


def test_benchmark_study_runs_the_new_methods(tmp_path, monkeypatch):
    """The benchmark kind trains them like any strategy; laftr on six groups is listed, not crashed."""
    import pandas as pd

    from fairmed.studies.runner import run_study
    from fairmed.studies.spec import resolve_spec

    monkeypatch.setenv("FAIRMED_CACHE", str(tmp_path / "cache"))
    spec = resolve_spec(
        {
            "name": "bm_methods",
            "kind": "benchmark",
            "source": {
                "kind": "synth_embeddings",
                "seed": 0,
                "config": {"preset": "skin", "n": 300, "dim": 8},
            },
            "groups": ["fst:each"],
            "design": {"seeds": [0], "stratify": ["malignant"]},
            "model": {"arch": "mlp", "hidden": 8},
            "strategies": [
                "erm",
                "laftr",
                "cfair",
                {"name": "swad", "balance": "resample", "label": "swad_rs"},
            ],
            "train": {"epochs": 2},
            "audit": {"bootstrap": 0, "min_group_size": 5},
            "benchmark": {"mitigations": []},
        }
    )
    out = run_study(spec, tmp_path / "out", jobs=1, report=False)
    assert set(out.results["method"]) == {"erm", "cfair", "swad_rs"}
    notes = pd.read_parquet(out.out_dir / "tables" / "benchmark_notes.parquet")
    assert notes["method"].tolist() == ["laftr"]
    assert notes["note"].iloc[0].startswith("needs exactly two groups (its audit is binary), found ")


def test_laftr_audit_steps_move_the_adversary_only():
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(4))
    data = _data([0, 1, 0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1, 1, 0], x)
    cfg = TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, batch_size=8, device="cpu", amp="off")
    after = {}
    for steps in (1, 3):
        torch.manual_seed(0)
        model = build_model(ModelSpec(arch="mlp", hidden=4), 1, in_dim=2)
        strat = make_strategy(StrategySpec(name="laftr", aud_steps=steps), Task(2, "bce"), 4, data)
        Stepper.build(model, strat, data, cfg).step(torch.arange(8))
        after[steps] = (
            [p.detach().clone() for p in model.parameters()],
            strat.adversary[0].weight.detach().clone(),
        )
    assert all(torch.equal(a, b) for a, b in zip(after[1][0], after[3][0]))  # the model: one step each
    assert not torch.equal(after[1][1], after[3][1])  # the adversary: two more steps
