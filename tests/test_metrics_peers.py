"""The audit against peers on random data: fairlearn's MetricFrame and criteria, scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn import metrics as skm

from fairmed.metrics import audit, binary_metrics
from fairmed.metrics import demographic_parity_difference as dp_diff
from fairmed.metrics import equalized_odds_difference as eo_diff
from fairmed.metrics.groups import layout_binary, metrics_from_sums, weighted_sums
from fairmed.metrics.stats import resample_counts


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 3000
    group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, n)
    # some exact ties in the scores (rounded), as real classifiers produce
    s = np.round(np.clip(0.25 * y + 0.75 * rng.random(n) + 0.05 * (group == "c"), 0, 1), 3)
    return pd.DataFrame({"y_true": y, "y_score": s, "grp": group})


def test_per_group_metrics_match_sklearn(data):
    table = binary_metrics(data["y_true"], data["y_score"], data["grp"], threshold=0.5)
    for name, rows in data.groupby("grp"):
        y, s = rows["y_true"].to_numpy(), rows["y_score"].to_numpy()
        p = (s >= 0.5).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, p).ravel()
        got = table.loc[name]
        assert got["n"] == len(rows)
        assert got["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
        assert got["ppv"] == pytest.approx(skm.precision_score(y, p))
        assert got["tpr"] == pytest.approx(skm.recall_score(y, p))
        assert got["f1"] == pytest.approx(skm.f1_score(y, p))
        assert got["npv"] == pytest.approx(tn / (tn + fn))
        assert got["tnr"] == pytest.approx(tn / (tn + fp))
        assert got["fnr"] == pytest.approx(fn / (fn + tp))
        assert got["bce"] == pytest.approx(skm.log_loss(y, s))
        assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s))
        assert got["prevalence"] == pytest.approx(y.mean())


def test_metricframe_and_fairlearn_criteria(data):
    y, s, g = data["y_true"], data["y_score"], data["grp"]
    p = (s >= 0.5).astype(int)
    mf = MetricFrame(
        metrics={
            "accuracy": skm.accuracy_score,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "selection_rate": selection_rate,
        },
        y_true=y,
        y_pred=p,
        sensitive_features=g,
    )
    res = audit(data, ["grp"], bootstrap=0, min_group_size=0).to_frame()
    res = res[res["attribute"] == "grp"]
    wide = res[res["group"].isin(["a", "b", "c"])].pivot(index="group", columns="metric", values="value")
    for metric in ("accuracy", "tpr", "fpr", "selection_rate"):
        np.testing.assert_allclose(
            wide.loc[["a", "b", "c"], metric], mf.by_group[metric].loc[["a", "b", "c"]]
        )
        diff = res[(res["group"] == "difference") & (res["metric"] == metric)]["value"].iloc[0]
        ratio = res[(res["group"] == "ratio") & (res["metric"] == metric)]["value"].iloc[0]
        assert diff == pytest.approx(mf.difference()[metric])
        assert ratio == pytest.approx(mf.ratio()[metric])
    crit = res[res["group"] == "criterion"].set_index("metric")["value"]
    assert crit["demographic_parity"] == pytest.approx(
        demographic_parity_difference(y, p, sensitive_features=g)
    )
    assert crit["equalized_odds"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))
    assert dp_diff(y, p, g) == pytest.approx(demographic_parity_difference(y, p, sensitive_features=g))
    assert eo_diff(y, p, g) == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))


def test_weighted_replicates_match_sklearn_sample_weight(data):
    """A bootstrap replicate (multinomial counts) equals the metrics of the resampled data."""
    y = data["y_true"].to_numpy()
    s = data["y_score"].to_numpy()
    codes = pd.Categorical(data["grp"]).codes.astype(np.int64)
    pred = (s >= 0.5).astype(int)
    layout = layout_binary(y, pred, codes, ["a", "b", "c"], s)
    counts = resample_counts(layout.bounds, 3, np.random.default_rng(0))
    sums, auc_num = weighted_sums(layout, counts)
    reps = metrics_from_sums(sums, auc_num)
    ys, ss, cs = y[layout.order], s[layout.order], codes[layout.order]
    for r in range(3):
        for g in range(3):
            w = counts[r] * (cs == g)
            assert w.sum() == (codes == g).sum()  # stratified: group sizes fixed
            assert reps["auc"][r, g] == pytest.approx(skm.roc_auc_score(ys, ss, sample_weight=w), abs=1e-9)
            assert reps["f1"][r, g] == pytest.approx(skm.f1_score(ys, ss >= 0.5, sample_weight=w))
            assert reps["bce"][r, g] == pytest.approx(skm.log_loss(ys, ss, sample_weight=w), rel=1e-5)


def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(3)
    n, c = 1500, 4
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    frame = pd.DataFrame({f"p_{k}": proba[:, k] for k in range(c)})
    frame["y_true"] = y
    frame["site"] = rng.choice(["x", "y"], n)
    res = audit(frame, ["site"], bootstrap=0, min_group_size=0).to_frame()
    for site, rows in frame.groupby("site"):
        yt = rows["y_true"].to_numpy()
        pr = rows[[f"p_{k}" for k in range(c)]].to_numpy()
        yp = pr.argmax(1)
        got = res[(res["group"] == site)].set_index("metric")["value"]
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))
        assert got["f1_macro"] == pytest.approx(skm.f1_score(yt, yp, average="macro", zero_division=0))
        assert got["precision_macro"] == pytest.approx(
            skm.precision_score(yt, yp, average="macro", zero_division=0)
        )
        assert got["recall_macro"] == pytest.approx(
            skm.recall_score(yt, yp, average="macro", zero_division=0)
        )
        assert got["auc_ovr"] == pytest.approx(skm.roc_auc_score(yt, pr, multi_class="ovr", average="macro"))


def test_by_group_matches_metricframe_with_any_function(data):
    from fairmed.metrics import by_group, difference, ratio

    y, g = data["y_true"], data["grp"]
    p = (data["y_score"] >= 0.5).astype(int)
    fns = {"f1": skm.f1_score, "mcc": skm.matthews_corrcoef}
    ours = by_group(fns, y, p, g)
    mf = MetricFrame(metrics=fns, y_true=y, y_pred=p, sensitive_features=g)
    np.testing.assert_allclose(
        ours.loc[["a", "b", "c"]].to_numpy(float), mf.by_group.loc[["a", "b", "c"]].to_numpy(float)
    )
    np.testing.assert_allclose(ours.loc["overall"].to_numpy(float), mf.overall.to_numpy(float))
    np.testing.assert_allclose(difference(ours).to_numpy(), mf.difference().to_numpy())
    np.testing.assert_allclose(ratio(ours).to_numpy(), mf.ratio().to_numpy())
