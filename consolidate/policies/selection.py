"""Choose which VM leaves an overloaded host: pure functions over the host's VMs.

MMT (minimum migration time: least memory), MU (minimum CPU utilisation), RS (random, from the run's
seeded generator), MC (maximum correlation: the VM whose utilisation history the others' explain best,
by the R^2 of a linear regression, as Beloglazov & Buyya define it). Each registers itself by name
(registry.py); docs/adding-a-policy.md shows how to add one.
"""
from __future__ import annotations

import numpy as np

from consolidate.policies.registry import SELECTORS, selector


@selector("mmt", "minimum migration time: the VM with the least memory")
def minimum_migration_time(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                           history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[np.argmin(ram_mb[candidates])])


@selector("mc", "maximum correlation: the VM whose CPU history the others' explain best (R^2 of a linear "
          "regression)")
def maximum_correlation(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                        history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[_max_correlation(history_mips[:, candidates])])


@selector("rs", "random selection, from the run's seeded policy stream")
def random_selection(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                     history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[rng.integers(len(candidates))])


@selector("mu", "minimum utilisation: the VM asking for the least CPU (MIPS)")
def minimum_utilisation(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                        history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[np.argmin(demand_mips[candidates])])


def select_vm(name: str, candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
              history_mips: np.ndarray, rng: np.random.Generator) -> int:
    """Index (into the VM arrays) of the VM the registered selector `name` moves among `candidates` (non-empty,
    VM indices); ram_mb in MB, demand_mips in MIPS, history_mips (L, VMs) most recent last. Ties go to the
    earliest candidate."""
    if name not in SELECTORS:
        raise ValueError(f"unknown VM selection policy (got {name!r}, expected one of: {', '.join(SELECTORS)})")
    return SELECTORS[name].fn(candidates, ram_mb, demand_mips, history_mips, rng)


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
