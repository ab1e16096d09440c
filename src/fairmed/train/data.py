"""Tensors from Cohorts: inputs, labels, group codes and weights, batched by index permutation.

Images stay uint8 ``(n, h, w, 3)`` (a quarter of the float memory; on CUDA they move to the GPU
once); each batch is gathered by index and converted in one vectorized step (``float * scale -
shift`` normalises with the ImageNet mean/std that torchvision weights expect), optionally
flipped. Embeddings and cached features are float32 ``(n, d)``. No per-sample ``Dataset``.

Group codes come from a :class:`~fairmed.data.groups.GroupSpec`; a row whose group is NaN (missing
or excluded under the spec) has code ``-1``: it is trained and predicted like any other row, and
the group-based strategies treat it as described in :mod:`fairmed.train.strategies`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from fairmed.data.cohort import Cohort
from fairmed.data.groups import GroupSpec
from fairmed.errors import DataError
from fairmed.models.backbones import image_batch

NO_GROUP = -1


@dataclass
class TensorData:
    """One split as tensors: ``x`` (uint8 NHWC images or float features), ``y``, ``g`` (-1 = no group)."""

    x: torch.Tensor
    y: torch.Tensor
    g: torch.Tensor
    ids: np.ndarray
    weight: torch.Tensor | None = None
    group_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.y)

    @property
    def is_image(self) -> bool:
        return self.x.dtype == torch.uint8

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    def to(self, device: torch.device | str) -> TensorData:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return replace(self, x=move(self.x), y=move(self.y), g=move(self.g), weight=move(self.weight))

    def inputs(self, idx: torch.Tensor, augment: str = "none", generator: torch.Generator | None = None):
        """The model input of rows ``idx``: normalised float NCHW images, or the feature rows.

        ``augment`` (images only): ``flip`` random flips, ``skin`` the SCP code's augmentation
        (:mod:`fairmed.train.augment`) then flips, ``none`` nothing."""
        xb = self.x.index_select(0, idx)
        if not self.is_image:
            return xb
        if augment == "skin":
            from fairmed.train.augment import skin_augment

            xb = skin_augment(xb, generator)
        return image_batch(xb, augment in ("flip", "skin"), generator)


def group_codes(
    cohorts: Sequence[Cohort], groups: GroupSpec | None, names: Sequence[str] | None = None
) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Integer group codes for several cohorts under one name -> code mapping (-1 = no group).

    Codes follow the spec's group order, with groups that only some splits hold appended, so
    the same group has the same code in train, val and test. Given ``names`` (a trained model's
    mapping), rows of any other group get -1.
    """
    if groups is None:
        return [np.full(len(c), NO_GROUP, dtype=np.int64) for c in cohorts], ()
    assigned = [groups.assign(c.table).groups for c in cohorts]
    if names is None:
        found: list[str] = []
        for a in assigned:
            present = {str(v) for v in a.dropna().unique()}
            found += [str(c) for c in a.cat.categories if str(c) in present and str(c) not in found]
        names = found
    lookup = {str(name): k for k, name in enumerate(names)}
    codes = []
    for a in assigned:  # via the categorical codes: a loop over categories, not rows
        per_category = np.array([lookup.get(str(c), NO_GROUP) for c in a.cat.categories] + [NO_GROUP])
        raw = a.cat.codes.to_numpy()
        codes.append(per_category[np.where(raw >= 0, raw, len(per_category) - 1)].astype(np.int64))
    return codes, tuple(str(n) for n in names)


def labels_of(cohort: Cohort, label: str) -> np.ndarray:
    if label not in cohort.table.columns:
        raise DataError(f"{cohort.name}: no label column {label!r} (labels: {cohort.labels})")
    return cohort.y(label)


def tensor_data(
    x: np.ndarray,
    cohort: Cohort,
    label: str,
    codes: np.ndarray,
    group_names: tuple[str, ...],
    weight: np.ndarray | None = None,
) -> TensorData:
    """Wrap inputs ``x`` (uint8 images or float features, one row per cohort row) with the labels."""
    if len(x) != len(cohort):
        raise DataError(f"{cohort.name}: {len(x)} inputs for {len(cohort)} rows")
    array = np.ascontiguousarray(x)
    with (
        warnings.catch_warnings()
    ):  # a read-only memory-mapped image cache: batches are gathered, never written
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        xt = torch.from_numpy(array)
    if xt.dtype != torch.uint8:
        xt = xt.float()
    w = None
    if weight is not None:
        w = torch.as_tensor(np.asarray(weight, dtype=np.float32))
    return TensorData(
        x=xt,
        y=torch.from_numpy(np.array(labels_of(cohort, label), dtype=np.int64)),
        g=torch.from_numpy(np.asarray(codes, dtype=np.int64)),
        ids=cohort.ids,
        weight=w,
        group_names=group_names,
    )


def check_sample_weight(sample_weight, cohort: Cohort) -> np.ndarray | None:
    """A per-row weight vector (array or Series aligned by id) as float32, validated."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, pd.Series) and not isinstance(sample_weight.index, pd.RangeIndex):
        missing = ~pd.Index(cohort.ids).isin(sample_weight.index)
        if missing.any():
            raise DataError(f"sample_weight: no weight for ids {list(cohort.ids[missing][:5])}")
        sample_weight = sample_weight.reindex(cohort.ids).to_numpy()
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(w) != len(cohort):
        raise DataError(f"sample_weight: {len(w)} weights for {len(cohort)} training rows")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise DataError("sample_weight: weights must be finite, non-negative and not all zero")
    return w.astype(np.float32)
