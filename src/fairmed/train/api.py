"""From Cohorts to Predictions: :func:`fit_predict` (what studies call) and :func:`train_model`.

``train_model`` turns the cohorts into tensors (in-memory images, image files through the
decoded-image cache, embeddings, or cached frozen-backbone features), builds the model and the
strategy, and runs the one loop; the :class:`Trained` it returns predicts further cohorts
(``.predict``) and fine-tunes with the same loop (``.fine_tune``, e.g. after pruning).
``fit_predict`` = ``train_model`` + Predictions of the ``val`` and ``test`` splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from fairmed.data.cohort import ID, Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import DataError, SpecError
from fairmed.models.backbones import Classifier, build_head_model, build_model
from fairmed.models.features import cached_features
from fairmed.models.spec import ModelSpec
from fairmed.schema import Y_PRED, Y_SCORE, Y_TRUE, proba_column
from fairmed.train.config import StrategySpec, TrainConfig, as_spec
from fairmed.train.data import TensorData, check_sample_weight, group_codes, tensor_data
from fairmed.train.loop import FitResult, fit, predict_logits, resolve_device
from fairmed.train.strategies import Strategy, Task, make_strategy

SPLIT = "split"


def model_inputs(cohort: Cohort, spec: ModelSpec, config: TrainConfig) -> np.ndarray:
    """What the trainable model reads for each row: embeddings, uint8 pixels or frozen features."""
    if spec.arch == "mlp":
        if cohort.embeddings is None:
            raise DataError(
                f"{cohort.name}: model arch 'mlp' needs embeddings, the cohort has {cohort.pixel_source}"
                " (use an image arch, or frozen: true to train on backbone features)"
            )
        return np.asarray(cohort.embeddings, dtype=np.float32)
    if cohort.pixel_source not in ("memory", "files"):
        raise DataError(
            f"{cohort.name}: model arch {spec.arch!r} needs images, the cohort has {cohort.pixel_source}"
            " (use arch: mlp for embeddings)"
        )
    if spec.frozen:
        device = resolve_device(config.device)
        return cached_features(cohort, spec, config.cache_dir, device, config.eval_batch_size)
    from fairmed.data.images import load_images

    cache = None if config.cache_dir is None else config.cache_dir / "images"
    return np.asarray(load_images(cohort, spec.image_size, cache_dir=cache).pixels)


def _n_classes(cohorts: list[Cohort], label: str) -> int:
    first = cohorts[0]
    names = first.class_names.get(label)
    top = max(int(c.table[label].max()) + 1 for c in cohorts if len(c))
    return max(len(names) if names else 2, top)


@dataclass
class Trained:
    """A trained model with everything needed to turn further cohorts into Predictions."""

    model: Classifier
    strategy: Strategy
    task: Task
    fit: FitResult
    model_spec: ModelSpec
    strategy_spec: StrategySpec
    config: TrainConfig
    groups: GroupSpec | None
    group_names: tuple[str, ...]
    label: str

    def data(self, cohort: Cohort, sample_weight=None) -> TensorData:
        """``cohort`` as tensors for this model (same inputs, label and group codes as in training)."""
        codes, _ = group_codes([cohort], self.groups, self.group_names)
        x = model_inputs(cohort, self.model_spec, self.config)
        return tensor_data(
            x, cohort, self.label, codes[0], self.group_names, check_sample_weight(sample_weight, cohort)
        )

    def scores(self, cohort: Cohort) -> np.ndarray:
        """Probabilities: (n,) of the positive class (binary) or (n, C)."""
        logits = predict_logits(self.model, self.data(cohort), self.config.eval_batch_size, self.config.amp)
        return self.task.scores(logits).numpy()

    def predict(self, cohort: Cohort, split: str | None = None) -> pd.DataFrame:
        """Predictions of every row of ``cohort`` (``split`` column when given)."""
        return predictions_frame(cohort, self.scores(cohort), self.label, split)

    def fine_tune(
        self,
        train: Cohort,
        val: Cohort,
        config: TrainConfig | dict | None = None,
        sample_weight=None,
    ) -> FitResult:
        """Train this model further with the same strategy and loop (e.g. after pruning channels)."""
        cfg = as_spec(TrainConfig, config, "train") if config is not None else self.config
        result = fit(
            self.model, self.strategy, self.data(train, sample_weight), self.data(val), cfg, "fine-tune"
        )
        self.fit = result
        return result


def predictions_frame(
    cohort: Cohort, scores: np.ndarray, label: str, split: str | None = None
) -> pd.DataFrame:
    """The Predictions table: split, id, y_true, y_score (binary) or p_k + y_pred, raw attributes."""
    cols: dict[str, object] = {}
    if split is not None:
        cols[SPLIT] = np.full(len(cohort), split, dtype=object)
    cols[ID] = cohort.table[ID].to_numpy()
    cols[Y_TRUE] = cohort.y(label)
    if scores.ndim == 1:
        cols[Y_SCORE] = scores.astype(np.float64)
    elif scores.shape[1] == 2:
        cols[Y_SCORE] = scores[:, 1].astype(np.float64)
    else:
        for k in range(scores.shape[1]):
            cols[proba_column(k)] = scores[:, k].astype(np.float64)
        cols[Y_PRED] = scores.argmax(axis=1).astype(np.int64)
    out = pd.DataFrame(cols)
    for attr in cohort.attributes:
        if attr not in out.columns:
            out[attr] = cohort.table[attr].array  # keeps the cohort's dtype (Int64 fst, str sex)
    if split is not None:
        out[SPLIT] = out[SPLIT].astype("str")
    return out


def _groups(groups: GroupSpec | str | None) -> GroupSpec | None:
    return GroupSpec.parse(groups) if isinstance(groups, str) else groups


def train_model(
    train: Cohort,
    val: Cohort,
    *,
    model: ModelSpec | dict | str | None = None,
    strategy: StrategySpec | dict | str | None = None,
    config: TrainConfig | dict | None = None,
    groups: GroupSpec | str | None = None,
    seed: int | None = None,
    sample_weight=None,
    label: str | None = None,
    extra: list[Cohort] | None = None,
    desc: str | None = None,
) -> Trained:
    """Train a model on ``train`` (selection on ``val``) with the one loop; see :func:`fit_predict`.

    ``extra`` cohorts (e.g. the test split) only contribute group names to the code mapping,
    so that a group seen only there still has a code when predicted.
    """
    mspec = as_spec(ModelSpec, model, "model")
    sspec = as_spec(StrategySpec, strategy, "strategy")
    cfg = as_spec(TrainConfig, config, "train")
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": int(seed)})
    gspec = _groups(groups)
    if cfg.select == "worst_group_auc" and gspec is None:
        raise SpecError(
            "train.select: 'worst_group_auc' needs groups (e.g. groups='fst:12-56'); none were given"
        )
    label = label or train.label
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"training needs rows in train and val (got {len(train)} and {len(val)})")
    cohorts = [train, val, *(extra or [])]
    n_classes = _n_classes(cohorts, label)
    codes, names = group_codes(cohorts, gspec)
    weight = check_sample_weight(sample_weight, train)
    x_train = model_inputs(train, mspec, cfg)
    train_d = tensor_data(x_train, train, label, codes[0], names, weight)
    val_d = tensor_data(model_inputs(val, mspec, cfg), val, label, codes[1], names)
    task = Task.resolve(n_classes, sspec)
    torch.manual_seed(cfg.seed)
    if mspec.frozen:
        net = build_head_model(mspec, x_train.shape[1], task.n_out)
    else:
        net = build_model(mspec, task.n_out, in_dim=x_train.shape[1] if x_train.ndim == 2 else None)
    strat = make_strategy(sspec, task, net.feature_dim, train_d)
    result = fit(net, strat, train_d, val_d, cfg, desc or f"{sspec.name} seed {cfg.seed}")
    return Trained(net, strat, task, result, mspec, sspec, cfg, gspec, names, label)


def fit_predict(
    train: Cohort, val: Cohort, test: Cohort, *, return_model: bool = False, **options: Any
) -> pd.DataFrame | tuple[pd.DataFrame, Trained]:
    """Train with the one loop and return Predictions of the ``val`` and ``test`` splits.

    ``options`` are the keywords of :func:`train_model`: ``model``, ``strategy``, ``config``,
    ``groups`` (a GroupSpec or its short form: the groups of the group-based strategies and of
    ``select: worst_group_auc``), ``seed`` (overrides ``config.seed``), ``sample_weight`` (one
    weight per training row, or a Series indexed by id, multiplying each training sample's loss),
    ``label``. Columns: ``split`` ("val"/"test"), ``id``, ``y_true``, ``y_score`` (binary) or
    ``p_0 .. p_{C-1}`` + ``y_pred`` (multi-class), and the cohort's raw attribute columns. With
    ``return_model=True`` the :class:`Trained` model (per-sample training losses in
    ``.fit.train_losses``) comes back too.
    """
    trained = train_model(train, val, extra=[test], **options)
    preds = pd.concat([trained.predict(val, "val"), trained.predict(test, "test")], ignore_index=True)
    return (preds, trained) if return_model else preds
