"""Initial placement policies: first-fit, best-fit decreasing, power-aware best-fit decreasing (PABFD), each
registered by name (registry.py) as its per-VM choice of host; `place` runs the common loop.

Each is a pure function of VM sizes and host capacities and returns a host index per VM (-1 where a VM
fits no host). VMs are placed one at a time (each choice changes what is free), but each choice is
one vectorised pass over all hosts.
"""
from __future__ import annotations

import numpy as np

from consolidate.hardware.power import power_w
from consolidate.policies.registry import get_placement, placement


@placement("first-fit", "each VM in the order given, to the lowest-indexed host it fits", aliases=("ff",),
           decreasing=False)
def first_fit(candidates: np.ndarray, need_mips, cpu_used_mips: np.ndarray, host_cpu_limit_mips: np.ndarray,
              host_capacity_mips, curves_w, host_type) -> int:
    return 0


@placement("best-fit-decreasing", "largest VM first, each to the host left with the least packable CPU",
           aliases=("bfd",))
def best_fit_decreasing(candidates: np.ndarray, need_mips, cpu_used_mips: np.ndarray,
                        host_cpu_limit_mips: np.ndarray, host_capacity_mips, curves_w, host_type) -> int:
    return int(np.argmin(host_cpu_limit_mips[candidates] - cpu_used_mips[candidates] - need_mips))


@placement("power-aware-best-fit-decreasing", "largest VM first, each to the host whose power draw rises least "
           "(CloudSim's PABFD)", aliases=("pabfd",), needs_power=True)
def power_aware_best_fit_decreasing(candidates: np.ndarray, need_mips, cpu_used_mips: np.ndarray,
                                    host_cpu_limit_mips: np.ndarray, host_capacity_mips: np.ndarray,
                                    curves_w: np.ndarray, host_type: np.ndarray) -> int:
    # the draw before is taken at the host's current utilisation
    cap = host_capacity_mips[candidates]
    t = host_type[candidates]
    before = power_w(cpu_used_mips[candidates] / cap, curves_w, t)
    rise = power_w((cpu_used_mips[candidates] + need_mips) / cap, curves_w, t) - before
    # equal rises (a linear power curve makes them all equal) must not be split by float noise:
    # take the lowest-indexed host within a microwatt of the least rise
    return int(np.flatnonzero(rise <= rise.min() + 1e-6)[0])


def place(policy: str, vm_cpu_mips: np.ndarray, vm_mem_mb: np.ndarray, host_cpu_limit_mips: np.ndarray,
          host_mem_mb: np.ndarray, *, host_capacity_mips: np.ndarray | None = None,
          curves_w: np.ndarray | None = None, host_type: np.ndarray | None = None,
          host_cpu_used_mips: np.ndarray | None = None, host_mem_used_mb: np.ndarray | None = None,
          vm_pools: np.ndarray | None = None, host_pools: np.ndarray | None = None) -> np.ndarray:
    """Assign each VM to a host by the registered placement `policy` (a name or an alias).

    vm_cpu_mips, vm_mem_mb: size of each VM (MIPS, MB); vm_cpu_mips may be (VMs, host types) when a VM's
    size depends on the host it lands on (virtualization overhead differs by CPU), indexed by host_type. host_cpu_limit_mips: packable CPU per host (capacity
    times the overcommit ratio), host_mem_mb: memory per host. A VM goes only where both fit. For
    `power-aware-best-fit-decreasing`, host_capacity_mips, curves_w and host_type give each host's power
    curve. host_*_used give what is already on the hosts (default empty). vm_pools (VMs, pools) bool: the directly
    assigned devices each VM needs (hardware.assignment), with host_pools (hosts, pools) the devices free per
    host, keeps a VM off hosts without a free one of each; the pools are never oversubscribed. Returns int64 host index per VM,
    -1 for a VM that fits nowhere. Ties go to the lowest host index, so results are deterministic.
    """
    n_hosts = len(host_cpu_limit_mips)
    cpu_used = np.zeros(n_hosts) if host_cpu_used_mips is None else np.array(host_cpu_used_mips, dtype=float)
    mem_used = np.zeros(n_hosts) if host_mem_used_mb is None else np.array(host_mem_used_mb, dtype=float)
    sizes = np.asarray(vm_cpu_mips, dtype=float)
    per_type = sizes.ndim == 2
    if per_type and host_type is None:
        raise ValueError("per-host-type VM sizes need host_type")
    out = np.full(len(sizes), -1, dtype=np.int64)
    entry = get_placement(policy)
    if entry.decreasing:
        # decreasing by the size a VM has on its largest footprint
        order = np.argsort(-(sizes.max(axis=1) if per_type else sizes), kind="stable")
    else:
        order = np.arange(len(sizes))
    if entry.needs_power and (curves_w is None or host_type is None or host_capacity_mips is None):
        raise ValueError(f"{entry.name} needs host_capacity_mips, curves_w and host_type")
    eps = 1e-9  # MIPS and MB sums of floats: a VM that exactly fills a host must still fit
    free = None
    if vm_pools is not None and vm_pools.any():
        free = np.array(host_pools, dtype=np.int64)
    for v in order:
        cpu = sizes[v][host_type] if per_type else float(sizes[v])  # scalar, or one size per host
        mem = float(vm_mem_mb[v])
        fits = (cpu_used + cpu <= host_cpu_limit_mips + eps) & (mem_used + mem <= host_mem_mb + eps)
        need_pools = np.flatnonzero(vm_pools[v]) if free is not None else ()
        for p in need_pools:
            fits &= free[:, p] > 0
        candidates = np.flatnonzero(fits)
        if candidates.size == 0:
            continue
        need = cpu[candidates] if per_type else cpu
        i = entry.fn(candidates, need, cpu_used, host_cpu_limit_mips, host_capacity_mips, curves_w, host_type)
        h = candidates[i]
        out[v] = h
        cpu_used[h] += need[i] if per_type else need
        mem_used[h] += mem
        for p in need_pools:
            free[h, p] -= 1
    return out
