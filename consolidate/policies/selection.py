"""Choose which VM leaves an overloaded host: pure functions over the host's VMs.

MMT (minimum migration time: least memory), MU (minimum CPU utilisation), RS (random, from the run's
seeded generator), MC (maximum correlation: the VM whose utilisation history the others' explain best,
by the R^2 of a linear regression, as Beloglazov & Buyya define it). Each registers itself by name
(registry.py); docs/adding-a-policy.md shows how to add one. Candidates come in the order the round gives
them (under cloudsim_compat, the order the VMs joined their host, as CloudSim's host VM list); ties go to the
first.
"""
from __future__ import annotations

import numpy as np

from consolidate.policies.registry import SELECTORS, selector


@selector("mmt", "minimum migration time: the VM with the least memory", reads_history=False)
def minimum_migration_time(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                           history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[np.argmin(ram_mb[candidates])])


@selector("mc", "maximum correlation: the VM whose CPU history the others' explain best (R^2 of a linear "
          "regression; MMT when there are fewer common samples than VMs)")
def maximum_correlation(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                        history_mips: np.ndarray, rng: np.random.Generator) -> int:
    # CloudSim 3.0.3 (PowerVmSelectionPolicyMaximumCorrelation): the histories over the samples every candidate
    # has; when the regression cannot be done (fewer samples than VMs) it asks its fallback, MMT. A VM with a
    # constant history has no R^2 (0/0) and is never picked; when no R^2 is above zero, the first candidate
    h = history_mips[:, candidates]
    h = h[~np.isnan(h).any(axis=1)]
    if len(candidates) < 2 or h.shape[0] < len(candidates):
        return minimum_migration_time(candidates, ram_mb, demand_mips, history_mips, rng)
    r2 = r_squared(h)
    ok = r2 > 0
    return int(candidates[int(np.argmax(np.where(ok, r2, -np.inf))) if ok.any() else 0])


@selector("rs", "random selection, from the run's seeded policy stream", reads_history=False)
def random_selection(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                     history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[rng.integers(len(candidates))])


# CloudSim 3.0.3 takes the least utilisation relative to the VM's own MIPS: its variant is this same rule,
# given demand as that fraction
@selector("mu", "minimum utilisation: the VM asking for the least CPU (MIPS; under cloudsim_compat relative to "
          "its own MIPS)", cloudsim=lambda c, r, frac, h, g: minimum_utilisation(c, r, frac, h, g),
          reads_history=False)
def minimum_utilisation(candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
                        history_mips: np.ndarray, rng: np.random.Generator) -> int:
    return int(candidates[np.argmin(demand_mips[candidates])])


# selectors that take the candidate with the least of a per-VM quantity (the first on ties), and that quantity
# from a round's Snapshot (outside cloudsim_compat): a round can select by them compiled (policies.kernel)
LEAST_OF = {minimum_migration_time: lambda s: s.vm_ram_mb, minimum_utilisation: lambda s: s.vm_demand_mips}


def select_vm(name: str, candidates: np.ndarray, ram_mb: np.ndarray, demand_mips: np.ndarray,
              history_mips: np.ndarray, rng: np.random.Generator) -> int:
    """Index (into the VM arrays) of the VM the registered selector `name` moves among `candidates` (non-empty,
    VM indices); ram_mb in MB, demand_mips in MIPS, history_mips (L, VMs) most recent last. Ties go to the
    earliest candidate."""
    if name not in SELECTORS:
        raise ValueError(f"unknown VM selection policy (got {name!r}, expected one of: {', '.join(SELECTORS)})")
    return SELECTORS[name].fn(candidates, ram_mb, demand_mips, history_mips, rng)


def r_squared(h: np.ndarray) -> np.ndarray:
    """R^2 of the least-squares regression (with intercept) of each column of h (samples, VMs) on all the others,
    all at once: with S the centred cross-product matrix, R^2_i = 1 - 1 / (S_ii (S^-1)_ii). NaN for a constant
    column (no variance to explain); a constant regressor adds nothing to the intercept and is left out. When the
    rest is (nearly) collinear, each regression is solved on its own by least squares."""
    z = h - h.mean(axis=0)
    var = np.einsum("ij,ij->j", z, z)
    live = var > 1e-12 * max(float(var.max(initial=0.0)), 1e-300)
    out = np.full(h.shape[1], np.nan)
    zl = z[:, live]
    if zl.shape[1] == 1:
        out[live] = 0.0  # nothing else varies: nothing explains it
        return out
    if zl.shape[1] == 0:
        return out
    S = zl.T @ zl
    if np.linalg.cond(S) < 1e10:
        out[live] = 1.0 - 1.0 / (np.diag(S) * np.diag(np.linalg.inv(S)))
        return out
    r2 = np.empty(zl.shape[1])
    for i in range(zl.shape[1]):
        y, X = zl[:, i], np.delete(zl, i, axis=1)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r2[i] = 1.0 - np.sum((y - X @ coef) ** 2) / np.sum(y ** 2)
    out[live] = r2
    return out
