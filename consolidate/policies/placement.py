"""Initial placement policies: first-fit, best-fit decreasing, power-aware best-fit decreasing (PABFD).

Each is a pure function of VM sizes and host capacities and returns a host index per VM (-1 where a VM
fits no host). VMs are placed one at a time (each choice changes what is free), but each choice is
one vectorised pass over all hosts.
"""
from __future__ import annotations

import numpy as np

from consolidate.hardware.power import power_w


def place(policy: str, vm_cpu_mips: np.ndarray, vm_mem_mb: np.ndarray, host_cpu_limit_mips: np.ndarray,
          host_mem_mb: np.ndarray, *, host_capacity_mips: np.ndarray | None = None,
          curves_w: np.ndarray | None = None, host_type: np.ndarray | None = None,
          host_cpu_used_mips: np.ndarray | None = None, host_mem_used_mb: np.ndarray | None = None,
          vm_device: np.ndarray | None = None, host_vf: np.ndarray | None = None,
          host_pt: np.ndarray | None = None) -> np.ndarray:
    """Assign each VM to a host.

    vm_cpu_mips, vm_mem_mb: size of each VM (MIPS, MB); vm_cpu_mips may be (VMs, host types) when a VM's
    size depends on the host it lands on (virtualization overhead differs by CPU), indexed by host_type. host_cpu_limit_mips: packable CPU per host (capacity
    times the overcommit ratio), host_mem_mb: memory per host. A VM goes only where both fit. For
    `power-aware-best-fit-decreasing`, host_capacity_mips, curves_w and host_type give each host's power
    curve. host_*_used give what is already on the hosts (default empty). vm_device (1: needs an SR-IOV VF,
    2: a whole device by passthrough) with host_vf / host_pt (free VFs and devices per host) keeps a VM off
    hosts without a free one; the pools are never oversubscribed. Returns int64 host index per VM,
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
    if policy == "first-fit":
        order = np.arange(len(sizes))
    elif policy in ("best-fit-decreasing", "power-aware-best-fit-decreasing"):
        # decreasing by the size a VM has on its largest footprint
        order = np.argsort(-(sizes.max(axis=1) if per_type else sizes), kind="stable")
    else:
        raise ValueError(f"unknown placement policy {policy!r}")
    if policy == "power-aware-best-fit-decreasing" and (curves_w is None or host_type is None or host_capacity_mips is None):
        raise ValueError("power-aware placement needs host_capacity_mips, curves_w and host_type")
    eps = 1e-9  # MIPS and MB sums of floats: a VM that exactly fills a host must still fit
    pools = None
    if vm_device is not None and vm_device.any():
        pools = {1: np.array(host_vf, dtype=np.int64), 2: np.array(host_pt, dtype=np.int64)}
    for v in order:
        cpu = sizes[v][host_type] if per_type else float(sizes[v])  # scalar, or one size per host
        mem = float(vm_mem_mb[v])
        fits = (cpu_used + cpu <= host_cpu_limit_mips + eps) & (mem_used + mem <= host_mem_mb + eps)
        dev = int(vm_device[v]) if pools is not None else 0
        if dev:
            fits &= pools[dev] > 0
        candidates = np.flatnonzero(fits)
        if candidates.size == 0:
            continue
        need = cpu[candidates] if per_type else cpu
        if policy == "first-fit":
            i = 0
        elif policy == "best-fit-decreasing":
            i = np.argmin(host_cpu_limit_mips[candidates] - cpu_used[candidates] - need)
        else:
            # CloudSim's PABFD: the host whose draw rises least, current draw taken at current utilisation
            cap = host_capacity_mips[candidates]
            t = host_type[candidates]
            before = power_w(cpu_used[candidates] / cap, curves_w, t)
            rise = power_w((cpu_used[candidates] + need) / cap, curves_w, t) - before
            # equal rises (a linear power curve makes them all equal) must not be split by float noise:
            # take the lowest-indexed host within a microwatt of the least rise
            i = np.flatnonzero(rise <= rise.min() + 1e-6)[0]
        h = candidates[i]
        out[v] = h
        cpu_used[h] += need[i] if per_type else need
        mem_used[h] += mem
        if dev:
            pools[dev][h] -= 1
    return out
