"""Put traces of any fixed step onto the scenario's interval grid, exactly.

A trace is piecewise constant (each sample holds over its step). The value of scenario interval k is
the time-average over [k*dt, (k+1)*dt), computed from the running integral, so a coarser grid averages
and a finer grid repeats, and total CPU work is preserved either way.
"""
from __future__ import annotations

import numpy as np


def samples_needed(duration_s: float, trace_interval_s: float, start_s: float = 0.0) -> int:
    """Number of trace samples needed to cover [0, duration_s) when sample 0 starts at start_s."""
    return int(np.ceil((duration_s - start_s) / trace_interval_s - 1e-9))


def resample(values: np.ndarray, trace_interval_s: float, interval_s: float, n_intervals: int,
             start_s: float = 0.0) -> np.ndarray:
    """Time-average rows of `values` (shape (rows, samples)) over each scenario interval.

    Returns float64 of shape (rows, n_intervals). The caller guarantees the trace covers the grid.
    """
    values = np.asarray(values, dtype=np.float64)
    if start_s == 0.0 and np.isclose(trace_interval_s, interval_s):
        return values[:, :n_intervals].copy()
    cum = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1) * trace_interval_s
    edges = np.arange(n_intervals + 1) * interval_s - start_s
    pos = edges / trace_interval_s
    i = np.clip(np.floor(pos).astype(np.int64), 0, values.shape[1] - 1)
    frac = (pos - i)[None, :]
    integral = cum[:, i] + frac * trace_interval_s * values[:, i]
    return np.diff(integral, axis=1) / interval_s
