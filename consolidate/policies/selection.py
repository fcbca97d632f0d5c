"""Choose which VM leaves an overloaded host: pure functions over the host's VMs.

MMT (minimum migration time: least memory), MU (minimum CPU utilisation), RS (random, from the run's
seeded generator), MC (maximum correlation: the VM whose utilisation history the others' explain best,
by the R^2 of a linear regression, as Beloglazov & Buyya define it).
"""
from __future__ import annotations

import numpy as np

def select_vm(kind: str, candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
              history: np.ndarray, rng: np.random.Generator) -> int:
    """Index (into the VM arrays) of the VM to migrate among `candidates` (non-empty, VM indices); history is
    (L, VMs) of utilisation, most recent last. Ties go to the earliest candidate."""
    if kind == "mmt":
        return int(candidates[np.argmin(ram_mb[candidates])])
    if kind == "mu":
        return int(candidates[np.argmin(demand_mips[candidates])])
    if kind == "rs":
        return int(candidates[rng.integers(len(candidates))])
    if kind == "mc":
        return int(candidates[_max_correlation(history[:, candidates])])
    raise ValueError(f"unknown VM selection policy {kind!r}")


def _max_correlation(h: np.ndarray) -> int:
    h = h[~np.isnan(h).any(axis=1)]
    n_vms = h.shape[1]
    if n_vms < 2 or h.shape[0] < n_vms + 1:
        return 0  # too little history to regress: fall back to the first (CloudSim returns the first too)
    r2 = np.zeros(n_vms)
    for i in range(n_vms):
        y = h[:, i]
        X = np.column_stack([np.ones(len(y)), np.delete(h, i, axis=1)])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        ss_res = np.sum((y - X @ coef) ** 2)
        ss_tot = np.sum((y - y.mean()) ** 2)
        r2[i] = 1 - ss_res / ss_tot if ss_tot > 0 else 0.0
    return int(np.argmax(r2))
