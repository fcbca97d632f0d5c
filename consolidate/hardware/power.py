"""Host power from piecewise-linear curves (SPECpower style: watts at 0%, 10%, ..., 100% CPU)."""
from __future__ import annotations

import numpy as np


def power_w(util: np.ndarray, curves_w: np.ndarray, host_type: np.ndarray) -> np.ndarray:
    """Power draw in watts of hosts at CPU utilisation `util` (0..1).

    `curves_w` is (types, 11): watts at 0%, 10%, ..., 100%; `host_type` indexes its rows per host.
    Linear between points, as CloudSim's PowerModelSpecPower does. Utilisation is clipped to 0..1.
    """
    pos = np.clip(util, 0.0, 1.0) * 10.0
    lo = np.minimum(pos.astype(np.int64), 9)
    frac = pos - lo
    c = curves_w[host_type]
    rows = np.arange(len(host_type))
    p0 = c[rows, lo]
    return p0 + frac * (c[rows, lo + 1] - p0)
