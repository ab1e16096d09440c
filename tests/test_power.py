"""Power and the minimum detectable gap: hand-computed sizes, the inverse, and simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from fairmed.metrics import power as pw
from fairmed.metrics.delong import delong_test


def test_hanley_mcneil_published_example():
    # Hanley & McNeil (1982), Radiology 143:29-36, Table 1 ratings (51 abnormal, 58 normal):
    # A = 0.893 with standard error 0.032 (their eq. 2)
    se = math.sqrt(pw.hanley_mcneil_variance(0.893, 51, 58))
    assert round(se, 3) in (0.032, 0.033)
    assert se == pytest.approx(0.03251, abs=1e-5)


def test_n_per_group_two_proportions_by_hand():
    # 0.45 vs 0.55 (accuracy 0.5 +- 0.05), alpha 0.05, power 0.8:
    # n = (1.96 sqrt(2 .25) + 0.8416 sqrt(2 .2475))^2 / 0.1^2 = 391.3 -> 392 per group
    z_a, z_b = special.ndtri(0.975), special.ndtri(0.8)
    by_hand = (z_a * math.sqrt(0.5) + z_b * math.sqrt(2 * 0.45 * 0.55)) ** 2 / 0.1**2
    assert math.ceil(by_hand) == 392
    assert pw.n_per_group("accuracy", 0.1, 0.5, 0.5) == 392


@pytest.mark.parametrize("metric", pw.METRICS)
@pytest.mark.parametrize("gap", [0.05, 0.1, 0.2])
def test_inverse_is_consistent_with_the_mdg(metric, gap):
    n = pw.n_per_group(metric, gap, [0.3, 0.4], 0.8)
    assert pw.minimum_detectable_gap(metric, [n, n], [0.3, 0.4], 0.8) <= gap + 1e-6
    assert pw.minimum_detectable_gap(metric, [n - 1, n - 1], [0.3, 0.4], 0.8) > gap


def test_mdg_has_the_target_power_and_shrinks_with_n():
    d = pw.minimum_detectable_gap("tpr", [400, 120], 0.3, 0.8)
    assert pw.power("tpr", d, [400, 120], 0.3, 0.8) == pytest.approx(0.8, abs=1e-4)
    assert pw.minimum_detectable_gap("tpr", [4000, 1200], 0.3, 0.8) < d
    # TPR rests on the positives: a lower prevalence means a larger MDG
    assert pw.minimum_detectable_gap("tpr", [400, 120], 0.1, 0.8) > d
    assert pw.minimum_detectable_gap("fpr", [400, 120], 0.1, 0.2) < pw.minimum_detectable_gap(
        "fpr", [400, 120], 0.9, 0.2
    )


def test_edge_cases():
    assert math.isnan(pw.minimum_detectable_gap("tpr", [100, 50], [0.3, 0.0], 0.8))  # no positives
    assert pw.minimum_detectable_gap("accuracy", [1, 1], 0.5, 0.5) == math.inf
    with pytest.raises(ValueError, match="at least two groups"):
        pw.power("tpr", 0.1, [100], 0.3, 0.8)
    with pytest.raises(ValueError, match="not supported"):
        pw.power("ppv", 0.1, [100, 100], 0.3, 0.8)


def _z_rejects(x1, m1, x2, m2, alpha=0.05):
    """Two-sided pooled two-proportion z test, vectorised over simulations."""
    p1, p2 = x1 / m1, x2 / m2
    pooled = (x1 + x2) / (m1 + m2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / m1 + 1 / m2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(p1 - p2) / se
    return np.nan_to_num(z) > special.ndtri(1 - alpha / 2)


def test_mdg_of_a_rate_against_a_simulation():
    # TPR of groups of 400 and 120 images at prevalence 0.3 (120 and 36 positives), TPR about 0.8
    d = pw.minimum_detectable_gap("tpr", [400, 120], 0.3, 0.8)
    lo, hi = 0.8 - d / 2, 0.8 + d / 2
    rng = np.random.default_rng(0)
    sims = 20_000
    powers = []
    for v_large, v_small in ((lo, hi), (hi, lo)):
        x1, x2 = rng.binomial(120, v_large, sims), rng.binomial(36, v_small, sims)
        powers.append(_z_rejects(x1, 120, x2, 36).mean())
    # the MDG is defined by the harder orientation; MC error ~0.003, normal approximation ~0.02
    assert min(powers) == pytest.approx(0.8, abs=0.03)


def test_mdg_of_auc_against_a_delong_simulation():
    # binormal scores (AUC = Phi(delta / sqrt 2)), groups of 200 and 100 images at prevalence 0.5
    d = pw.minimum_detectable_gap("auc", [200, 100], 0.5, 0.8)
    rng = np.random.default_rng(1)
    powers = []
    for a_large, a_small in ((0.8 - d / 2, 0.8 + d / 2), (0.8 + d / 2, 0.8 - d / 2)):
        rejected = 0
        sims = 400
        for _ in range(sims):
            groups = []
            for n, auc in ((200, a_large), (100, a_small)):
                delta = math.sqrt(2) * special.ndtri(auc)
                y = np.r_[np.ones(n // 2), np.zeros(n // 2)]
                groups += [y, rng.normal(delta * y, 1.0)]
            rejected += delong_test(*groups).p_value <= 0.05
        powers.append(rejected / sims)
    # Hanley-McNeil's variance is an approximation for binormal scores; MC error ~0.02
    assert min(powers) == pytest.approx(0.8, abs=0.07)


def test_audit_mdg_from_point_values():
    point = {
        "n": np.array([400.0, 120.0]),
        "prevalence": np.array([0.3, 0.3]),
        "tpr": np.array([0.85, 0.75]),
        "auc": np.array([0.9, np.nan]),
    }
    out = pw.audit_mdg(point)
    pooled = (0.85 * 120 + 0.75 * 36) / 156
    assert out["tpr"] == pytest.approx(pw.minimum_detectable_gap("tpr", [400, 120], 0.3, pooled))
    assert set(out) == {"tpr", "auc"}
    assert pw.audit_mdg({"n": np.array([10.0]), "prevalence": np.array([0.5])}) == {}


def test_power_command(capsys):
    from fairmed.cli import main

    main(["power", "--n", "400", "--n", "120", "--metric", "tpr", "--prevalence", "0.3", "--value", "0.8"])
    out = capsys.readouterr().out.splitlines()
    d = pw.minimum_detectable_gap("tpr", [400, 120], 0.3, 0.8)
    assert out[1] == f"minimum detectable gap: {d:.3f}" == "minimum detectable gap: 0.217"
    main(["power", "--n", "400", "--n", "120", "--prevalence", "0.3", "--value", "0.8", "--gap", "0.05"])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "images per group for power 0.8 against a gap of 0.05 (groups of equal size): "
        f"{pw.n_per_group('tpr', 0.05, 0.3, 0.8)}"
    )
    with pytest.raises(SystemExit) as exc:
        main(["power", "--n", "400"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --n: give one size per group, at least two (got 1)"


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(pw.METRICS),
    st.integers(20, 2000),
    st.integers(20, 2000),
    st.floats(0.1, 0.9),
    st.floats(0.55, 0.95),
)
def test_mdg_reaches_the_power_and_shrinks_with_more_images(metric, n1, n2, prevalence, value):
    d = pw.minimum_detectable_gap(metric, [n1, n2], prevalence, value)
    assert d > 0
    if math.isfinite(d):
        assert pw.power(metric, d, [n1, n2], prevalence, value) == pytest.approx(0.8, abs=1e-3)
    assert pw.minimum_detectable_gap(metric, [4 * n1, 4 * n2], prevalence, value) <= d
