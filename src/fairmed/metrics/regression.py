"""Per-group summaries of per-sample values (a VAE's reconstruction MSE, latent std, ELBO).

For each value column ``v``: ``v_mean``, ``v_median``, ``v_q25``, ``v_q75`` per group; the audit
adds their gaps and bootstrap intervals. Point quantiles use numpy's default (linear
interpolation); bootstrap replicates use the weighted inverted CDF (the smallest value whose
cumulative weight reaches q * n), which needs only a cumulative sum over the group's sorted
values for all replicates at once.
"""

from __future__ import annotations

import numpy as np

QUANTILES: dict[str, float] = {"q25": 0.25, "median": 0.5, "q75": 0.75}


class ValuesEngine:
    """Per-group mean and quartiles of several value columns, for sample weights (R, n)."""

    kind = "values"

    def __init__(self, values: dict[str, np.ndarray], codes: np.ndarray, groups: list[str]):
        keep = np.flatnonzero(codes >= 0)
        self.columns = list(values)
        self.groups = list(groups)
        c = codes[keep]
        # one order per column: by group, then value (stable argsort of group after value)
        base = np.argsort(c, kind="stable")  # the weights' order: by group, then input row
        where = np.empty(len(c), dtype=np.int64)
        where[base] = np.arange(len(c))
        self._sorted = {}
        self._from_base = {}  # per column: sorted position -> weight (base) position
        for name, v in values.items():
            v = np.asarray(v, dtype=float)[keep]
            first = np.argsort(v, kind="stable")
            order = first[np.argsort(c[first], kind="stable")]
            self._sorted[name] = v[order]
            self._from_base[name] = where[order]
        self.row_order = keep[base]  # weight position -> input row
        cs = np.sort(c)
        self.bounds = np.searchsorted(cs, np.arange(len(groups) + 1))

    @property
    def strata(self) -> np.ndarray:
        """One stratum (no labels): a permutation test shuffles group membership over all rows."""
        return np.zeros(len(self.row_order), dtype=np.int64)

    def parts(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-group values for weights (R, n) of the rows in ``row_order`` (each column's sorted
        order is mapped from it: a membership means the same rows in every column)."""
        return self.evaluate(weights, by_row=True)[0], {}

    @staticmethod
    def proportions(point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}  # means and quantiles: bootstrap intervals only

    @staticmethod
    def criteria(values: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def evaluate(
        self, weights: np.ndarray, by_row: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per-group summaries for weights (R, n). Bootstrap counts (``by_row=False``) apply to
        each column's sorted positions directly: within a group they are exchangeable draws."""
        n_rep, n_groups = weights.shape[0], len(self.groups)
        all_weights = weights
        point = n_rep == 1 and bool(np.all(weights == 1))
        out: dict[str, np.ndarray] = {}
        for name, v in self._sorted.items():
            weights = all_weights[:, self._from_base[name]] if by_row else all_weights
            mean = np.empty((n_rep, n_groups))
            qs = {k: np.empty((n_rep, n_groups)) for k in QUANTILES}
            for g in range(n_groups):
                a, b = int(self.bounds[g]), int(self.bounds[g + 1])
                wg = weights[:, a:b].astype(np.float64)
                vg = v[a:b]
                total = wg.sum(1)
                mean[:, g] = (wg @ vg) / total
                if point:
                    for k, q in QUANTILES.items():
                        qs[k][0, g] = np.quantile(vg, q)
                    continue
                cum = np.cumsum(wg, axis=1)
                for k, q in QUANTILES.items():
                    idx = (cum < (q * total)[:, None] - 1e-9).sum(1)
                    qs[k][:, g] = vg[np.minimum(idx, b - a - 1)]
            out[f"{name}_mean"] = mean
            for k in QUANTILES:
                out[f"{name}_{k}"] = qs[k]
        return out, {}

    def reasons(self, point: dict[str, np.ndarray]) -> list[tuple[str, str, str]]:
        return []
