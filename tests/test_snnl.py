"""SNNL-Fair channel scores against a direct loop over the paper's formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fairmed.mitigate.snnl import SNNLAccumulator, pairwise_sq_dists, score_channels, snnl_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def loop_snnl(features: np.ndarray, groups: np.ndarray, temperature: float) -> np.ndarray:
    """The formula sample by sample and channel by channel, in float64 (the reference).

    Samples without a same-group neighbour are left out and the mean divides by those kept.
    """
    b, k = features.shape[:2]
    out = np.full(k, np.nan)
    for ch in range(k):
        m = features[:, ch].reshape(b, -1).astype(np.float64)
        total, kept = 0.0, 0
        for i in range(b):
            num = sum(
                math.exp(-np.sum((m[i] - m[j]) ** 2) / temperature)
                for j in range(b)
                if j != i and groups[j] == groups[i]
            )
            den = sum(math.exp(-np.sum((m[i] - m[p]) ** 2) / temperature) for p in range(b) if p != i)
            if not any(j != i and groups[j] == groups[i] for j in range(b)):
                continue
            total += -math.log(num / den)
            kept += 1
        if kept:
            out[ch] = total / kept
    return out


def test_pairwise_distances_match_cdist():
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    d = pairwise_sq_dists(x)
    ref = torch.cdist(x, x) ** 2
    torch.testing.assert_close(d, ref, atol=1e-10, rtol=1e-10)
    assert torch.all(d.diagonal(dim1=1, dim2=2) == 0)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_loop_on_random_tensors(temperature):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 6, 3, 3, generator=gen) * 0.3
    groups = torch.tensor([0, 1] * 6)
    got = snnl_batch(feats, groups, temperature).numpy()
    ref = loop_snnl(feats.numpy(), groups.numpy(), temperature)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_hand_computed_two_by_two():
    # one channel, 1-pixel maps: A at 0 and 1, B at 3 and 4 (T = 1)
    feats = torch.tensor([0.0, 1.0, 3.0, 4.0]).reshape(4, 1, 1, 1)
    groups = torch.tensor([0, 0, 1, 1])
    e = math.exp
    # sample 0: same = e^-1, all = e^-1 + e^-9 + e^-16 (and symmetric for the others)
    l0 = -math.log(e(-1) / (e(-1) + e(-9) + e(-16)))
    l1 = -math.log(e(-1) / (e(-1) + e(-4) + e(-9)))
    expected = (l0 + l1 + l1 + l0) / 4
    assert snnl_batch(feats, groups, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_single_member_group_is_left_out():
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(5, 4, 2, 2, generator=gen)
    groups = torch.tensor([0, 0, 0, 0, 1])  # group 1 has one member: no same-group neighbour
    got = snnl_batch(feats, groups, 2.0).numpy()
    ref = loop_snnl(feats.numpy(), groups.numpy(), 2.0)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert np.isfinite(got).all()
    # the same as scoring only the four group-0 samples against all five in the denominator
    # (not against four): the lone sample still counts as an "other" neighbour
    assert not np.allclose(got, snnl_batch(feats[:4], groups[:4], 2.0).numpy())


def test_no_valid_sample_gives_nan_and_is_skipped():
    feats = torch.randn(2, 3, 2, 2)
    assert torch.isnan(snnl_batch(feats, torch.tensor([0, 1]))).all()
    assert torch.isnan(snnl_batch(feats[:1], torch.tensor([0]))).all()
    acc = SNNLAccumulator()
    acc.update(feats, torch.tensor([0, 1]))  # skipped
    with pytest.raises(ValueError, match="no batch"):
        acc.scores()
    acc.update(torch.randn(4, 3, 2, 2), torch.tensor([0, 0, 1, 1]))
    assert acc.batches == 1


def test_single_group_batch_scores_zero():
    feats = torch.randn(6, 3, 2, 2)
    torch.testing.assert_close(snnl_batch(feats, torch.zeros(6, dtype=torch.long)), torch.zeros(3))


def test_far_apart_groups_are_stable_and_low():
    # channel 0 separates the groups by 100 units: exp underflows without log-sum-exp
    feats = torch.randn(8, 2, 4) * 0.1
    groups = torch.tensor([0, 1] * 4)
    feats[groups == 1, 0] += 100.0
    s = snnl_batch(feats, groups, 1.0)
    assert torch.isfinite(s).all()
    assert s[0] < 1e-6 < s[1]


def test_chunked_equals_unchunked():
    feats = torch.randn(10, 7, 3, 3)
    groups = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1, 1, 1])
    torch.testing.assert_close(snnl_batch(feats, groups, chunk=3), snnl_batch(feats, groups))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="temperature"):
        snnl_batch(torch.randn(4, 2, 2), torch.tensor([0, 0, 1, 1]), temperature=0.0)
    with pytest.raises(ValueError, match="group codes"):
        snnl_batch(torch.randn(4, 2, 2), torch.tensor([0, 1, 1]))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 9),
    st.integers(1, 4),
    st.lists(st.sampled_from([0, 1, 1, 5, -1]), min_size=9, max_size=9),  # any codes, up to three groups
    st.floats(0.25, 8.0),
    st.integers(0, 10_000),
)
def test_property_matches_loop(b, k, codes, temperature, seed):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, k, 2, generator=gen, dtype=torch.float64)
    groups = torch.tensor(codes[:b])
    got = snnl_batch(feats, groups, temperature).numpy()
    ref = loop_snnl(feats.numpy(), groups.numpy(), temperature)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_score_channels_streams_batches_through_a_hook():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    xs = [torch.randn(8, 3, 6, 6) for _ in range(3)]
    gs = [torch.tensor([0, 1] * 4), torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]), torch.tensor([0] * 7 + [1])]
    scores = score_channels(model, conv, zip(xs, gs), temperature=2.0)
    with torch.no_grad():
        per_batch = [loop_snnl(conv(x).numpy(), g.numpy(), 2.0) for x, g in zip(xs, gs)]
    np.testing.assert_allclose(scores.numpy(), np.mean(per_batch, axis=0), rtol=1e-5, atol=1e-6)
    assert model.training  # mode restored
    assert not conv._forward_hooks  # hook removed


def authors_snnl(feats: np.ndarray, groups: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The authors' per-channel loss written out in numpy, one channel at a time: cosine distance,
    the sample counted in the numerator, eps 1e-9, denominator over the others, mean over all b."""
    b, k = feats.shape[:2]
    flat = feats.reshape(b, k, -1).astype(np.float64)
    out = np.empty(k)
    for ch in range(k):
        m = flat[:, ch]
        norms = np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        unit = m / norms
        e = np.exp(-(1.0 - unit @ unit.T) / temperature)
        same = groups[:, None] == groups[None, :]
        den = (e * (1 - np.eye(b))).sum(1)
        num = (e * same).sum(1)
        out[ch] = -np.log((num + 1e-9) / den).mean()
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_cosine_with_self_matches_the_authors_formula(temperature):
    gen = torch.Generator().manual_seed(3)
    feats = torch.randn(10, 4, 2, 2, generator=gen, dtype=torch.float64)
    feats[0, 1] = 0.0  # a zero map: distance 1 to everything, itself included
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0, 1, 2])  # group 2 has a lone sample: still counted
    got = snnl_batch(feats, groups, temperature, distance="cosine", include_self=True).numpy()
    # float32 inside snnl_batch: agreement to float32 precision
    np.testing.assert_allclose(got, authors_snnl(feats.numpy(), groups.numpy(), temperature), rtol=1e-6)


def test_cosine_and_self_by_hand_on_two_dimensional_points():
    # one channel, four 2-d points: cos distances 0 (same direction) and 1 (orthogonal), T = 1
    feats = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]).reshape(4, 1, 2)
    groups = torch.tensor([0, 0, 1, 1])
    e1 = math.exp(-1.0)
    # each sample: one same-group neighbour at distance 0, two others at distance 1
    paper_like = -math.log(1.0 / (1.0 + 2 * e1))
    got = snnl_batch(feats, groups, 1.0, distance="cosine").item()
    assert got == pytest.approx(paper_like, rel=1e-6)
    with_self = -math.log((2.0 + 1e-9) / (1.0 + 2 * e1))  # itself (exp 0 = 1) joins the numerator
    got = snnl_batch(feats, groups, 1.0, distance="cosine", include_self=True).item()
    assert got == pytest.approx(with_self, rel=1e-6)
    # the squared-Euclidean variant with the sample itself, against the same formula written with cdist
    sq = torch.cdist(feats[:, 0], feats[:, 0]).pow(2).numpy()
    e = np.exp(-sq)
    same = (groups[:, None] == groups[None, :]).numpy()
    expected = -np.log(((e * same).sum(1) + 1e-9) / (e * (1 - np.eye(4))).sum(1)).mean()
    got = snnl_batch(feats, groups, 1.0, include_self=True).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_unknown_distance_is_refused():
    with pytest.raises(ValueError, match="SNNL distance must be one of"):
        snnl_batch(torch.randn(4, 2, 2), torch.tensor([0, 0, 1, 1]), distance="l1")
