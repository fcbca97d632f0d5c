"""CPU sharing on each host for one interval, for all VMs and hosts at once."""
from __future__ import annotations

import numpy as np


def share_cpu(demand_mips: np.ndarray, vm_host: np.ndarray, vm_cap_mips: np.ndarray,
              host_capacity_mips: np.ndarray, backend_mips: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Serve each VM's CPU demand from its host's capacity.

    A VM can use at most `vm_cap_mips` in its own context (its vCPUs, each at most one of the host's cores);
    `backend_mips` is work host threads do for it (I/O backends), outside that cap. A host asked for more
    than its capacity serves every request the same fraction (proportional share). Unplaced VMs
    (vm_host == -1) get nothing.

    Returns (served_mips per VM including its backend, requested_mips per host, served_mips per host).
    """
    n_hosts = len(host_capacity_mips)
    placed = vm_host >= 0
    request = np.where(placed, np.minimum(demand_mips, vm_cap_mips), 0.0)
    if backend_mips is not None:
        request = request + np.where(placed, backend_mips, 0.0)
    h = np.where(placed, vm_host, 0)
    host_request = np.bincount(h, weights=request, minlength=n_hosts)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(host_request > host_capacity_mips, host_capacity_mips / host_request, 1.0)
    served = request * share[h]
    return served, host_request, np.minimum(host_request, host_capacity_mips)
