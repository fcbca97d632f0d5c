"""Initial placement policies: first-fit, best-fit decreasing, power-aware best-fit decreasing (PABFD), each
registered by name (registry.py) as its per-VM choice of host; `place` runs the common loop.

Each is a pure function of VM sizes and host capacities and returns a host index per VM (-1 where a VM
fits no host). VMs are placed one at a time (each choice changes what is free), but each choice is
one vectorised pass over all hosts.
"""
from __future__ import annotations

import numpy as np

from consolidate.hardware.power import power_w
from consolidate.policies import kernel
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
    # first-fit, and PABFD whose answer is the lowest-indexed host that fits (linear curves), without a pass over
    # every host (_Blocks); anything else takes the pass below
    blocks = _Blocks(cpu_used, mem_used, host_cpu_limit_mips + eps, host_mem_mb + eps) \
        if free is None and n_hosts and entry.name in ("first-fit", "power-aware-best-fit-decreasing") else None
    if blocks is not None and entry.needs_power:
        if np.any(host_cpu_limit_mips > host_capacity_mips):
            blocks = None  # overcommitted: past capacity a host's curve is flat, a VM there rises by nothing
        else:
            # the least rise per MIPS any host can have (its curve's least slope per 10% of its capacity), and a
            # margin of a few ulps of the curve's watts and eps MIPS past the limit
            per_mips = float((10.0 * np.diff(curves_w, axis=1).min(axis=1)[host_type] / host_capacity_mips).min())
            margin_w = 1e-11 * (1.0 + float(np.abs(curves_w).max())) + abs(per_mips) * 2 * eps
            curves = curves_w.tolist()
    if blocks is not None and not entry.needs_power and n_hosts >= kernel.MIN_HOSTS and len(sizes):  # first-fit
        return kernel.first_fit_all(np.asarray(order, np.int64), np.ascontiguousarray(sizes.reshape(len(sizes), -1)),
                                    per_type, np.asarray(host_type if per_type else np.zeros(n_hosts), np.int64),
                                    np.asarray(vm_mem_mb, np.float64), cpu_used, mem_used,
                                    host_cpu_limit_mips + eps, host_mem_mb + eps)
    for v in order:
        if blocks is not None:
            h = blocks.first(sizes[v], float(vm_mem_mb[v]), host_type if per_type else None)
            if h >= 0 and entry.needs_power:
                need = float(sizes[v][host_type[h]] if per_type else sizes[v])
                least = float(sizes[v].min()) if per_type else need  # the VM's smallest size on any host type
                curve, cap, used = curves[host_type[h]], float(host_capacity_mips[h]), float(cpu_used[h])
                rise = _power(min((used + need) / cap, 1.0), curve) - _power(min(used / cap, 1.0), curve)
                # no host rises by less than per_mips x least (less the margin): within 1e-6 W of that, h wins
                if per_mips < 0 or least < 0 or rise > per_mips * least - margin_w + 1e-6:
                    h = -2  # another host may rise less: the full pass decides
            if h == -1:
                continue
            if h >= 0:
                out[v] = h
                cpu_used[h] += sizes[v][host_type[h]] if per_type else float(sizes[v])
                mem_used[h] += float(vm_mem_mb[v])
                continue
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


def _power(util: float, curve: list[float]) -> float:
    """hardware.power.power_w of one host at utilisation `util` <= 1, in the same float operations."""
    pos = max(util, 0.0) * 10.0
    lo = min(int(pos), 9)
    return curve[lo] + (pos - lo) * (curve[lo + 1] - curve[lo])


class _Blocks:
    """The lowest-indexed host where a VM fits (CPU used + size <= limit, memory used + size <= memory), found by
    walking blocks of BLOCK hosts in index order and skipping a block whose least CPU and memory used cannot take
    it. Used only grows, so a block's least used is a safe bound until a walk through it finds nothing and makes
    it exact again."""

    BLOCK = 64

    def __init__(self, cpu_used: np.ndarray, mem_used: np.ndarray, cpu_limit: np.ndarray, mem_limit: np.ndarray):
        B, H = self.BLOCK, len(cpu_used)
        self.nb = nb = -(-H // B)
        pad = nb * B - H
        self.cpu_used, self.mem_used = cpu_used, mem_used  # the caller's arrays, updated by the caller
        self.cpu_limit = np.concatenate([cpu_limit, np.full(pad, -np.inf)])
        self.mem_limit = np.concatenate([mem_limit, np.full(pad, -np.inf)])
        self.last = H - 1
        self.offsets = np.arange(B)
        self.cpu_max = self.cpu_limit.reshape(nb, B).max(axis=1)
        self.mem_max = self.mem_limit.reshape(nb, B).max(axis=1)
        self.cpu_min, self.mem_min = np.empty(nb), np.empty(nb)
        self._tighten(np.arange(nb)[:, None] * B + self.offsets, slice(None))

    def _tighten(self, idx: np.ndarray, blocks) -> None:
        at = np.minimum(idx, self.last)  # a padding host has no room: its used values do not matter
        self.cpu_min[blocks] = self.cpu_used[at].min(axis=1)
        self.mem_min[blocks] = self.mem_used[at].min(axis=1)

    def first(self, size, mem_mb: float, host_type: np.ndarray | None) -> int:
        """Lowest-indexed host where a VM of `size` MIPS (per host type when host_type is given) and mem_mb fits;
        -1 if none."""
        B = self.BLOCK
        least = float(size.min()) if host_type is not None else float(size)
        blocks = np.flatnonzero((self.cpu_min + least <= self.cpu_max) & (self.mem_min + mem_mb <= self.mem_max))
        i, step = 0, 2
        while i < len(blocks):  # a few blocks first, then twice as many each time
            part = blocks[i:i + step]
            idx = part[:, None] * B + self.offsets
            at = np.minimum(idx, self.last)
            cpu = size[host_type[at]] if host_type is not None else size
            ok = (self.cpu_used[at] + cpu <= self.cpu_limit[idx]) & (self.mem_used[at] + mem_mb <= self.mem_limit[idx])
            if ok.any():
                return int(idx.ravel()[ok.argmax()])
            self._tighten(idx, part)
            i, step = i + step, 2 * step
        return -1
