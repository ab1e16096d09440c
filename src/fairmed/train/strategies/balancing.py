"""Balancing family: ERM and the cell-balancing strategies.

- ``erm``: empirical risk minimisation, the mean per-sample loss (Vapnik 1992).
- ``reweight``: per-sample weights ``w_i = M / (K * M_c(i))`` that give every non-empty cell
  ``c`` (group x label, or group) the same total mass ``M / K`` (``M``: total mass, ``K``: number
  of cells) -- the classic reweighing of Kamiran & Calders (2012) toward balanced groups.
- ``resample``: the same cell-balancing, applied by drawing each epoch's ``n`` samples with
  replacement with probability proportional to ``w_i`` (group-balanced mini-batches, as in
  Idrissi et al. 2022 "Simple data balancing..."; MEDFAIR's ``resampling``), the loss unweighted.

Rows without a group (code -1) form one extra cell "(no group)" (x label). The same balancing
combines with every other strategy through ``strategy.balance`` (e.g. ``name: swad, balance:
resample`` is MEDFAIR's resamplingSWAD).
"""

from __future__ import annotations

from fairmed.train.strategies.base import Strategy, register


@register("erm")
class ERM(Strategy):
    """Empirical risk minimisation: the (weighted) mean per-sample loss."""


@register("reweight")
class Reweight(Strategy):
    """Loss weights that equalise the mass of every group (x label) cell (Kamiran & Calders 2012)."""

    balance = "reweight"


@register("resample")
class Resample(Strategy):
    """Group (x label)-balanced mini-batches: rows drawn with probability proportional to the balancing weight."""

    balance = "resample"
