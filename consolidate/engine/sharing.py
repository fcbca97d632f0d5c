"""CPU sharing on each host for one interval, for all VMs and hosts at once."""
from __future__ import annotations

import numpy as np


def share_cpu(demand_mips: np.ndarray, vm_host: np.ndarray, vm_cap_mips: np.ndarray,
              host_capacity_mips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Serve each VM's CPU demand from its host's capacity.

    A VM can use at most `vm_cap_mips` (its vCPUs, each at most one of the host's cores); a host whose
    VMs ask for more than its capacity serves each of them the same fraction of its request
    (proportional share). Unplaced VMs (vm_host == -1) get nothing.

    Returns (served_mips per VM, requested_mips per host, served_mips per host).
    """
    n_hosts = len(host_capacity_mips)
    placed = vm_host >= 0
    request = np.where(placed, np.minimum(demand_mips, vm_cap_mips), 0.0)
    h = np.where(placed, vm_host, 0)
    host_request = np.bincount(h, weights=request, minlength=n_hosts)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(host_request > host_capacity_mips, host_capacity_mips / host_request, 1.0)
    served = request * share[h]
    return served, host_request, np.minimum(host_request, host_capacity_mips)
