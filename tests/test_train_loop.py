"""The one training loop: seeds, model selection, early stopping, checkpoints, weights, per-sample losses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fairmed.data.synth import SynthConfig, generate
from fairmed.data.synth_embeddings import EmbeddingSynthConfig, generate_embeddings
from fairmed.errors import DataError, SpecError
from fairmed.train import TrainConfig, fit_predict, train_model
from fairmed.train.selection import auc, binary_auc, worst_group_auc

FAST = {"epochs": 3, "batch_size": 32, "lr": 3e-3}


@pytest.fixture(scope="module")
def emb():
    c = generate_embeddings(EmbeddingSynthConfig(n=600, dim=16), seed=5)
    return c.subset(np.arange(400)), c.subset(np.arange(400, 500)), c.subset(np.arange(500, 600))


@pytest.fixture(scope="module")
def img():
    c = generate(SynthConfig(n=240, size=16), seed=6)
    return c.subset(np.arange(160)), c.subset(np.arange(160, 200)), c.subset(np.arange(200, 240))


SMALL = {"arch": "small_cnn", "image_size": 16, "channels": [8, 16], "dropout": 0.2}


def test_same_seed_same_predictions(img):
    cfg = {**FAST, "epochs": 2, "augment": "flip"}
    a = fit_predict(*img, model=SMALL, strategy="adversarial", config=cfg, groups="sex", seed=3)
    b = fit_predict(*img, model=SMALL, strategy="adversarial", config=cfg, groups="sex", seed=3)
    c = fit_predict(*img, model=SMALL, strategy="adversarial", config=cfg, groups="sex", seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["y_score"], c["y_score"])


def test_history_selection_and_checkpoint(emb, tmp_path):
    trained = train_model(
        emb[0],
        emb[1],
        model="mlp",
        strategy="erm",
        config={**FAST, "epochs": 4, "checkpoint_dir": tmp_path, "select": "worst_group_auc"},
        groups="race",
        seed=0,
    )
    hist, result = trained.fit.history, trained.fit
    assert list(hist["epoch"]) == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "val_auc", "val_worst_group_auc", "score", "lr"} <= set(hist.columns)
    assert result.best_score == hist["val_worst_group_auc"].max()
    assert result.best_epoch == int(hist.loc[hist["val_worst_group_auc"].idxmax(), "epoch"])
    saved = torch.load(tmp_path / "best.pt", weights_only=True)
    assert saved["epoch"] == result.best_epoch
    for k, v in trained.model.state_dict().items():
        assert torch.equal(saved["model"][k], v.cpu())
    assert not list(tmp_path.glob("*.tmp"))


def test_early_stopping_with_patience(emb):
    # a learning rate of ~0 never improves after epoch 1: patience 2 stops at epoch 3
    trained = train_model(
        emb[0], emb[1], model="mlp", config={**FAST, "epochs": 20, "lr": 1e-12, "patience": 2}, seed=0
    )
    assert len(trained.fit.history) == 3 and trained.fit.best_epoch == 1


def test_per_sample_train_losses_are_the_loss_of_each_row(emb):
    preds, trained = fit_predict(
        *emb, model="mlp", strategy={"name": "erm", "loss": "gce", "gce_q": 0.7}, config=FAST, seed=0,
        return_model=True,
    )  # fmt: skip
    losses = trained.fit.train_losses
    assert list(losses.index) == list(emb[0].ids) and losses.name == "loss"
    p = trained.scores(emb[0])
    y = emb[0].y()
    p_true = np.where(y == 1, p, 1 - p)
    assert np.allclose(losses.to_numpy(), (1 - p_true**0.7) / 0.7, atol=1e-5)
    # the model re-predicts val exactly as fit_predict reported it
    val = trained.predict(emb[1], "val")
    assert np.allclose(val["y_score"], preds.loc[preds["split"] == "val", "y_score"])


def test_sample_weight_zero_rows_do_not_count(emb):
    train, val, test = emb
    keep = np.arange(len(train)) < 200
    w = keep.astype(float)
    cfg = {**FAST, "scheduler": "none", "optimizer": "sgd", "momentum": 0.0, "batch_size": 400}
    # full-batch SGD with mean(w * loss), w normalised to mean 1 = mean over the kept rows
    a = fit_predict(train, val, test, model="mlp", config=cfg, seed=1, sample_weight=w)
    sub = train.subset(keep)
    b = fit_predict(sub, val, test, model="mlp", config={**cfg, "batch_size": 200}, seed=1)
    assert np.allclose(a["y_score"], b["y_score"], atol=1e-4)  # summation order only
    # a Series aligned by id is accepted; a wrong length is a one-line DataError
    series = pd.Series(w, index=train.ids)[::-1]
    fit_predict(train, val, test, model="mlp", config=FAST, seed=1, sample_weight=series)
    with pytest.raises(DataError, match="sample_weight: 3 weights for 400 training rows"):
        fit_predict(train, val, test, model="mlp", config=FAST, seed=1, sample_weight=[1, 2, 3])


def test_fine_tune_continues_with_the_same_loop(img):
    trained = train_model(img[0], img[1], model=SMALL, config={**FAST, "epochs": 1}, groups="sex", seed=0)
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    result = trained.fine_tune(img[0], img[1], config={"epochs": 1, "lr": 1e-2})
    assert len(result.history) == 1
    assert any(not torch.equal(before[k], v) for k, v in trained.model.state_dict().items())


def test_bad_specs_are_one_line(emb):
    with pytest.raises(SpecError, match=r"strategy\.name: .*got 'magic'"):
        fit_predict(*emb, model="mlp", strategy="magic", seed=0)
    with pytest.raises(SpecError, match=r"train\.epochs"):
        fit_predict(*emb, model="mlp", config={"epochs": 0}, seed=0)
    with pytest.raises(DataError, match="needs images"):
        fit_predict(*emb, model="small_cnn", seed=0)
    with pytest.raises(DataError, match="needs embeddings"):
        c = generate(SynthConfig(n=20, size=8), seed=0)
        fit_predict(c, c, c, model="mlp", seed=0)
    assert TrainConfig().device == "auto"


def test_selection_aucs_match_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # ties
    assert binary_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    y3 = rng.integers(0, 3, 200)
    p = rng.dirichlet(np.ones(3), 200)
    assert auc(y3, p) == pytest.approx(roc_auc_score(y3, p, multi_class="ovr", average="macro"))
    g = rng.integers(-1, 2, 200)
    expected = min(roc_auc_score(y[g == k], s[g == k]) for k in (0, 1))
    assert worst_group_auc(y, s, g) == pytest.approx(expected)
    assert np.isnan(binary_auc(np.ones(5), s[:5]))


def test_image_files_go_through_the_decoded_image_cache(tmp_path):
    from PIL import Image

    from fairmed.data.cohort import Cohort

    c = generate(SynthConfig(n=90, size=16), seed=8)
    root = tmp_path / "images"
    root.mkdir()
    paths = []
    for i, image in enumerate(c.images):  # writing fixture files, not training
        paths.append(f"img{i}.png")
        Image.fromarray(image).save(root / paths[-1])
    files = Cohort(c.table.assign(path=paths), labels=c.labels, attributes=c.attributes, image_root=root)
    parts = files.subset(np.arange(50)), files.subset(np.arange(50, 70)), files.subset(np.arange(70, 90))
    cfg = {**FAST, "epochs": 1, "cache_dir": tmp_path / "cache"}
    from_files = fit_predict(*parts, model=SMALL, config=cfg, seed=0)
    mem = c.subset(np.arange(50)), c.subset(np.arange(50, 70)), c.subset(np.arange(70, 90))
    in_memory = fit_predict(*mem, model=SMALL, config=cfg, seed=0)
    assert list((tmp_path / "cache" / "images").glob("*.npy"))
    pd.testing.assert_frame_equal(from_files, in_memory)  # PNG is lossless: the same pixels, same model


def test_worst_group_selection_without_groups_is_a_one_line_error():
    cohort = generate_embeddings(EmbeddingSynthConfig(preset="cxr", n=60, dim=4), seed=1)
    train, val = cohort.subset(np.arange(40)), cohort.subset(np.arange(40, 60))
    config = {"select": "worst_group_auc", "epochs": 1}
    with pytest.raises(SpecError, match="'worst_group_auc' needs groups"):
        train_model(train, val, model="mlp", config=config)
