"""Wilson score intervals for per-group rates (TPR, FPR, accuracy, selection rate, ...).

A rate k / n estimated at 0 or 1 has a percentile-bootstrap interval of zero width: every
resample of a group without false positives has none either, so ``0.000 [0.000, 0.000]`` would
claim certainty that 50 images cannot give. The Wilson score interval (Wilson 1927) inverts the
score test of a binomial proportion: it never has zero width for n > 0, stays inside [0, 1], and
its coverage is close to nominal for every p, also near 0 and 1 (Brown, Cai & DasGupta 2001),

    centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),

with p = k / n and z the normal quantile of the level. At k = 0 the upper end is
z^2 / (n + z^2) (about 3.84 / (n + 3.84) at 95%: 0.071 for n = 50).
"""

from __future__ import annotations

import numpy as np
from scipy import special


def wilson_interval(k, n, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion k / n at level ``ci``; NaN where n is 0 or NaN."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    k, n = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    z = float(special.ndtri(1 - (1 - ci) / 2))
    ok = n > 0
    safe_n = np.where(ok, n, 1.0)
    p = np.clip(np.where(ok, k / safe_n, 0.0), 0.0, 1.0)
    den = 1 + z * z / safe_n
    centre = (p + z * z / (2 * safe_n)) / den
    half = z / den * np.sqrt(p * (1 - p) / safe_n + z * z / (4 * safe_n * safe_n))
    lo = np.where(ok, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(ok, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi
