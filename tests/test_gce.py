"""GCE loss (value, gradient, q -> 0 limit) and the detector -> plan -> retrain pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.design.splits import split_cohort
from fairmed.errors import DataError, InputError, SpecError
from fairmed.mitigate.gce import detect_bias, plan_from_detector, resample_and_fit
from fairmed.mitigate.resampling import ResamplingConfig, false_positive_rates, plan_resampling
from fairmed.train import fit_predict
from fairmed.train.strategies import gce_loss, per_sample_loss

FAST = {"epochs": 3, "batch_size": 32, "lr": 3e-3, "num_threads": 1}
MODEL = {"arch": "mlp", "hidden": 16}


# ------------------------------------------------------------------ the loss
@pytest.mark.parametrize("q", [0.3, 0.7, 1.0])
def test_gce_value_and_gradient_binary(q):
    z = torch.tensor([[0.3], [-1.2], [2.0], [-0.4]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, 0, 1])
    loss = gce_loss(z, y, q)
    s = (2 * y - 1).double()
    p_y = torch.sigmoid(s * z.detach()[:, 0])  # p(y | x) with one logit
    assert torch.allclose(loss.detach().double(), (1 - p_y**q) / q)
    loss.sum().backward()
    # d/dz (1 - p_y^q) / q = -p_y^(q-1) dp_y/dz = -s p_y^q (1 - p_y)
    assert torch.allclose(z.grad[:, 0].double(), -s * p_y**q * (1 - p_y), atol=1e-6)


def test_gce_value_and_gradient_multiclass():
    q = 0.5
    z = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([2, 1])
    loss = gce_loss(z, t, q)
    p = torch.softmax(z.detach(), 1)
    p_y = p[torch.arange(2), t]
    assert torch.allclose(loss.detach().double(), (1 - p_y**q) / q)
    loss.sum().backward()
    # d/dz_k = -p_y^q (1[k = y] - p_k): the cross-entropy gradient scaled by p_y^q
    onehot = torch.nn.functional.one_hot(t, 3).double()
    assert torch.allclose(z.grad.double(), -(p_y**q)[:, None] * (onehot - p), atol=1e-6)


def test_gce_tends_to_cross_entropy_as_q_goes_to_zero():
    z = torch.tensor([[0.7], [-2.5], [4.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1])
    bce = per_sample_loss(z, y, "bce")
    gaps = [float((gce_loss(z, y, q) - bce).detach().abs().max()) for q in (0.5, 0.1, 0.01, 1e-4)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3  # monotone convergence to BCE
    gce_loss(z, y, 1e-6).sum().backward()
    g_gce = z.grad.clone()
    z.grad = None
    bce.sum().backward()
    assert torch.allclose(g_gce, z.grad, atol=1e-5)


# ------------------------------------------------------------------ the pipeline
@pytest.fixture(scope="module")
def parts():
    """cxr embeddings with an injected FPR gap: 40% of Medicaid patients with findings recorded healthy."""
    cfg = EmbeddingSynthConfig(
        preset="cxr",
        n=3000,
        dim=12,
        separation=1.0,
        label_noise_by={"insurance": {"Medicaid": 0.4}},
        label_noise_mode="to_1",
    )
    cohort = generate_embeddings(cfg, seed=0)
    pos = split_cohort(cohort, {"train": 0.6, "val": 0.2, "test": 0.2}, 0, None, ["no_finding"])
    return {k: cohort.subset(v) for k, v in pos.items()}


@pytest.mark.parametrize("loss", ["gce", "bce"])
def test_detector_records_its_own_per_sample_loss(parts, loss):
    det = detect_bias(
        parts["train"], parts["val"], detector_loss=loss, gce_q=0.7, model=MODEL, config=FAST, seed=0
    )
    assert list(det["id"]) == list(parts["train"].ids) and set(det["split"]) == {"train"}
    p, y = det["y_score"].to_numpy(), det["y_true"].to_numpy()
    p_y = np.where(y == 1, p, 1 - p)
    expected = (1 - p_y**0.7) / 0.7 if loss == "gce" else -np.log(p_y)
    assert np.allclose(det["loss"], expected, atol=1e-5)
    assert np.array_equal(det["y_pred"], (p >= 0.5).astype(int))
    assert {"race", "sex", "age", "insurance"} <= set(det.columns)


def test_resample_and_fit_is_detector_plan_retrain(parts):
    train, val, test = parts["train"], parts["val"], parts["test"]
    kw = {"model": MODEL, "config": FAST, "seed": 1}
    res = resample_and_fit(
        train,
        val,
        test,
        resampling={"mode": "down_up", "up_fraction": 0.5},
        attributes=["insurance", "sex"],
        **kw,
    )
    det = res.detector
    # the plan is plan_resampling of the detector's losses, decisions and the attributes' groups
    groups = {a: train.table[a].astype(object).reset_index(drop=True) for a in ("insurance", "sex")}
    ref = plan_resampling(
        det["loss"], det["y_true"], det["y_pred"], groups, ResamplingConfig(mode="down_up", up_fraction=0.5)
    )
    assert np.array_equal(res.plan.positions, ref.positions)
    assert res.plan.size == len(train) - len(res.plan.removed) + len(res.plan.duplicated) > len(train)
    # the injected under-diagnosis shows as Medicaid's higher detector FPR: Medicaid is upsampled
    fpr, overall = false_positive_rates(det["y_true"], det["y_pred"], groups["insurance"])
    assert fpr["Medicaid"] > overall
    up = res.plan.decisions.query("step == 'up' and attribute == 'insurance'").set_index("group")
    assert up.loc["Medicaid", "applies"] and up.loc["Medicaid", "n_selected"] > 0
    # the classifier: exactly fit_predict on the resampled rows (duplicates carry #k ids)
    again = fit_predict(train.take(res.plan.positions), val, test, strategy="erm", **kw)
    pd.testing.assert_frame_equal(res.predictions, again)
    assert set(res.predictions["split"]) == {"val", "test"}
    # reusing the detector frame gives the same result without training it again
    reused = resample_and_fit(
        train, val, test, resampling={"mode": "down_up", "up_fraction": 0.5}, attributes=["insurance", "sex"],
        detector=det, **kw,
    )  # fmt: skip
    pd.testing.assert_frame_equal(reused.predictions, res.predictions)


def test_mode_none_is_plain_training(parts):
    train, val, test = parts["train"], parts["val"], parts["test"]
    res = resample_and_fit(
        train, val, test, resampling={"mode": "none"}, attributes="race", model=MODEL, config=FAST, seed=2
    )
    assert res.detector.empty and res.plan.size == len(train) and res.plan.decisions.empty
    plain = fit_predict(train, val, test, model=MODEL, config=FAST, seed=2)
    pd.testing.assert_frame_equal(res.predictions, plain)


def test_worst_group_selection_uses_the_first_attribute(parts):
    train, val, test = parts["train"], parts["val"], parts["test"]
    config = {**FAST, "select": "worst_group_auc"}
    res = resample_and_fit(
        train, val, test, resampling={"mode": "none"}, attributes=["insurance", "sex"], model=MODEL, config=config, seed=2
    )  # fmt: skip
    same = fit_predict(train, val, test, model=MODEL, config=config, groups="insurance", seed=2)
    pd.testing.assert_frame_equal(res.predictions, same)


def test_user_errors_are_one_line(parts):
    train, val, test = parts["train"], parts["val"], parts["test"]
    with pytest.raises(SpecError, match="resampling.up_fraction"):
        resample_and_fit(train, val, test, resampling={"up_fraction": 2}, attributes="race")
    with pytest.raises(SpecError, match="detector_loss"):
        detect_bias(train, val, detector_loss="ce")
    with pytest.raises(InputError, match="not the .* training rows"):
        plan_from_detector(
            pd.DataFrame({"id": ["x"], "y_true": [0], "y_pred": [0], "loss": [0.1]}), train, "race"
        )
    table = train.table.assign(no_finding=np.arange(len(train)) % 3)
    multi = replace(train, table=table, class_names={})
    with pytest.raises(DataError, match="binary label"):
        detect_bias(multi, val)


def test_fpr_from_baseline_on_validation(parts):
    from fairmed.mitigate.gce import baseline_rates

    train, val, test = parts["train"], parts["val"], parts["test"]
    kw = {"model": MODEL, "config": FAST, "seed": 1}
    base = fit_predict(train, val, test, strategy="erm", **kw)
    rates = baseline_rates(base, val, ["insurance"])
    v = base[base["split"] == "val"].set_index("id").loc[val.ids]
    ref = false_positive_rates(
        val.y(), (v["y_score"].to_numpy() >= 0.5).astype(int), val.table["insurance"].reset_index(drop=True)
    )
    pd.testing.assert_series_equal(rates["insurance"][0], ref[0])
    assert rates["insurance"][1] == ref[1]
    cfg = {"mode": "up", "up_fraction": 0.2, "fpr_from": "baseline_val"}
    res = resample_and_fit(train, val, test, resampling=cfg, attributes=["insurance"], baseline=base, **kw)
    up = res.plan.decisions.set_index("group")
    assert up["fpr"].to_dict() == pytest.approx(ref[0].to_dict(), nan_ok=True)
    assert len(res.plan.duplicated) == round(0.2 * len(train))  # one qualifying subgroup at least
    with pytest.raises(InputError, match="no validation score for"):
        baseline_rates(base[base["split"] == "test"], val, ["insurance"])
