"""Multi-class per-group metrics (accuracy, macro precision/recall/F1, one-vs-rest AUC) and the
per-class rates behind Eopp0/Eopp1/Eodd, from weighted counts (vectorized over replicates).

Per group and class c, with sample weights: T_c (true c), D_c (predicted c), TP_c (both). Then
TPR_c = TP_c / T_c, FPR_c = (D_c - TP_c) / (n - T_c), TNR_c = 1 - FPR_c where defined, precision
P_c = TP_c / D_c. Zero division gives 0, scikit-learn's ``zero_division=0`` rule: a class absent
from a group contributes a rate of 0. Macro precision/recall/F1 average over the classes present
in the group (in its labels or decisions), as scikit-learn's ``average="macro"`` does on that
group's data. One-vs-rest AUC is the unweighted mean over classes with both positives and
negatives in the group (``roc_auc_score(multi_class="ovr", average="macro")``).

Eopp0/Eopp1/Eodd average over all C classes, also when C = 2 (then Eopp0 == Eopp1 and the signed
Eodd is 0; see ``criteria.equal_odds_measures``); the audit warns about two-class probability tables.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fairmed.metrics.criteria import equal_odds_measures, multiclass_dp


def _zdiv(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def count_matrix(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, n_groups: int, n_classes: int):
    """Sparse (n, 3 G C) indicator matrix: weights @ it gives per-group T, D and TP counts."""
    keep = codes >= 0
    rows = np.flatnonzero(keep)
    c, t, p = codes[keep], y[keep], pred[keep]
    block = n_groups * n_classes
    cols = np.concatenate([c * n_classes + t, block + c * n_classes + p, 2 * block + c * n_classes + t])
    data = np.concatenate([np.ones(2 * len(rows)), (t == p).astype(float)])
    return sparse.csr_matrix((data, (np.concatenate([rows, rows, rows]), cols)), shape=(len(y), 3 * block))


def class_counts(
    y: np.ndarray,
    pred: np.ndarray,
    codes: np.ndarray,
    n_groups: int,
    n_classes: int,
    weights=None,
    matrix=None,
) -> dict[str, np.ndarray]:
    """Unweighted (or (R, n)-weighted) per-group class counts T, D, TP shaped (R, G, C)."""
    w = np.ones((1, len(y))) if weights is None else np.asarray(weights, dtype=np.float64)
    if matrix is None:
        matrix = count_matrix(y, pred, codes, n_groups, n_classes)
    sums = np.asarray((matrix.T @ w.T).T).reshape(w.shape[0], 3, n_groups, n_classes)
    return {"T": sums[:, 0], "D": sums[:, 1], "TP": sums[:, 2]}


def rates_from_counts(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-class one-vs-rest rates (R, G, C) and per-group metrics (R, G) from counts."""
    t, d, tp = counts["T"], counts["D"], counts["TP"]
    n = t.sum(-1, keepdims=True)
    neg = n - t
    fp = d - tp
    present = (t + d) > 0
    precision = _zdiv(tp, d)
    recall = _zdiv(tp, t)
    f1 = _zdiv(2 * tp, t + d)
    n_present = present.sum(-1)
    nn = n[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "tpr": recall,
            "fpr": _zdiv(fp, neg),
            "tnr": _zdiv(neg - fp, neg),
            "pred_rate": _zdiv(d, n),
            "accuracy": np.where(nn > 0, tp.sum(-1) / np.where(nn > 0, nn, 1), np.nan),
            "precision_macro": np.where(
                n_present > 0, (precision * present).sum(-1) / np.maximum(n_present, 1), np.nan
            ),
            "recall_macro": np.where(
                n_present > 0, (recall * present).sum(-1) / np.maximum(n_present, 1), np.nan
            ),
            "f1_macro": np.where(n_present > 0, (f1 * present).sum(-1) / np.maximum(n_present, 1), np.nan),
        }
    return out


class MulticlassEngine:
    """The audit's multi-class engine for sample weights (R, n) in group-sorted order."""

    kind = "multiclass"

    def __init__(self, y, codes, groups, n_classes: int, proba=None, pred=None):
        keep = np.flatnonzero(codes >= 0)
        order = keep[np.argsort(codes[keep], kind="stable")]
        self.groups = list(groups)
        self.n_classes = n_classes
        self.row_order = order  # weight position -> input row
        c = codes[order]
        self.codes = c
        self.y = np.asarray(y)[order]
        self.proba = None if proba is None else np.asarray(proba, dtype=float)[order]
        if pred is None:
            pred = np.asarray(proba).argmax(1)
        self.pred = np.asarray(pred)[order]
        self.bounds = np.searchsorted(c, np.arange(len(groups) + 1))
        self._auc = self._auc_index() if self.proba is not None else None
        self._counts = count_matrix(self.y, self.pred, c, len(groups), n_classes)

    def _auc_index(self):
        """Per (group, class): negatives sorted by p_c, positives sorted, and their ranks."""
        index = []
        for g in range(len(self.groups)):
            a, b = int(self.bounds[g]), int(self.bounds[g + 1])
            yg = self.y[a:b]
            per_class = []
            for k in range(self.n_classes):
                s = self.proba[a:b, k]
                order = np.argsort(s, kind="stable")
                is_pos = yg[order] == k
                neg, pos = order[~is_pos], order[is_pos]
                if len(neg) == 0 or len(pos) == 0:
                    per_class.append(None)
                    continue
                lo = np.searchsorted(s[neg], s[pos], side="left")
                hi = np.searchsorted(s[neg], s[pos], side="right")
                per_class.append((neg, pos, lo, hi))
            index.append(per_class)
        return index

    @property
    def strata(self) -> np.ndarray:
        """The class of each weight position (permutation tests shuffle groups within classes)."""
        return np.asarray(self.y, dtype=np.int64)

    def parts(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-group metrics (R, G) and the per-class rates (R, G, C) the criteria need."""
        n_groups = len(self.groups)
        counts = class_counts(
            self.y, self.pred, self.codes, n_groups, self.n_classes, weights, matrix=self._counts
        )
        rates = rates_from_counts(counts)
        values = {"n": counts["T"].sum(-1)}
        values.update({k: rates[k] for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro")})
        if self._auc is not None:
            values["auc_ovr"] = self._auc_ovr(weights)
        return values, {k: rates[k] for k in ("tpr", "fpr", "tnr", "pred_rate")}

    @staticmethod
    def criteria(values: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        crit = equal_odds_measures({k: state[k] for k in ("tpr", "fpr", "tnr")})
        crit["dp_multiclass"] = multiclass_dp(state["pred_rate"])
        return crit

    def evaluate(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        values, state = self.parts(weights)
        crit = self.criteria(values, state) if len(self.groups) >= 2 else {}
        return values, crit

    @staticmethod
    def proportions(point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Denominators of the metrics that are proportions k / n (Wilson intervals)."""
        return {"accuracy": point["n"]}

    def _auc_ovr(self, weights: np.ndarray) -> np.ndarray:
        n_rep = weights.shape[0]
        out = np.full((n_rep, len(self.groups)), np.nan)
        for g, per_class in enumerate(self._auc):
            a, b = int(self.bounds[g]), int(self.bounds[g + 1])
            wg = weights[:, a:b].astype(np.float64)
            total, count = np.zeros(n_rep), 0
            for item in per_class:
                if item is None:
                    continue
                neg, pos, lo, hi = item
                cneg = np.zeros((n_rep, len(neg) + 1))
                np.cumsum(wg[:, neg], axis=1, out=cneg[:, 1:])
                wpos = wg[:, pos]
                num = np.einsum("ij,ij->i", wpos, (cneg[:, lo] + cneg[:, hi]) / 2)
                den = wpos.sum(1) * cneg[:, -1]
                total += np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
                count += 1
            if count:
                out[:, g] = total / count
        return out

    def reasons(self, point: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
        out = []
        for g, name in enumerate(self.groups):
            if "auc_ovr" in point and np.isnan(point["auc_ovr"][g]):
                out.append((name, "auc_ovr", "no class has both positives and negatives in the group"))
        return out
