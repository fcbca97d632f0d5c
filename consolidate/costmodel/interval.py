"""The virtualization overhead of all VMs in one interval, with array arithmetic.

For VM v under configuration c (cycles per second, then MIPS through the host's MIPS per cycle):

    events      = sum over e of rate_e * vCPUs * cost_e(c)         (exits, handlers, injections, refills)
    page walks  = tlb_misses * vCPUs * walk_extra(c)               (nested walks are longer than native)
    world sw.   = world_switches * cost_ws(c)                      (vCPUs sharing a core)
    I/O, guest  = sum over I/O classes (net, disk) of served ops/s * (exit + driver-extra cycles)(c)
    I/O, host   = sum over I/O classes of served ops/s * backend_cycles(c)   (QEMU / vhost threads, host side)
    overhead    = events + page walks + world switches + I/O guest;   backend = I/O host

served = min(demanded ops/s, the path's cap, vCPUs x clock / guest cycles per op), and then, for the network,
what the physical port the VM's traffic leaves through can carry (`Ports`): the VMs on one port share its line
rate max-min fairly over their demands, each direction on its own (a port is full duplex); the rest is unserved
I/O. Nothing here loops over VMs: a loop over the handful of configurations does the matrix products for exits
by reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.costmodel.tables import REASON_LABELS, REASONS, CostTables
from consolidate.hardware.assignment import IO_CLASSES

COMPONENTS = ("exits", "tlb_refill", "page_walk", "world_switch", "io_guest", "io_backend")


@dataclass(frozen=True)
class Ports:
    """Which physical NIC port each VM's network traffic leaves through, and what each port carries.

    vm_port: (VMs,) port index (-1: none, e.g. unplaced); capacity_bps: (ports,) line rate in each direction;
    rx_share: (VMs,) share of the VM's packets that are received (the rest are sent); packet_bits: bits per packet
    on the wire, to turn packets per second into bits per second; taken_bps: (ports, 2) bits/s already taken in
    each direction (received, sent) by other traffic, live migrations' streams (None: nothing)."""

    vm_port: np.ndarray
    capacity_bps: np.ndarray
    rx_share: np.ndarray
    packet_bits: float
    taken_bps: np.ndarray | None = None


def maxmin_fill(demand: np.ndarray, group: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Max-min fair shares of `capacity[g]` among the demands of the members of each group g (water filling:
    every member gets min(demand, L_g), with L_g the level at which the group's shares add up to its capacity, or
    its full demand when the group's demands fit). Members with group -1 get nothing. Units are the caller's
    (demand and capacity alike). Vectorised: at most one sort, no loop over groups."""
    out = np.zeros(len(demand))
    live = np.flatnonzero(group >= 0)
    if not len(live):
        return out
    d, g = demand[live], group[live]
    # Nearly always no port is full, and then everyone gets their demand. That is the sorted pass's answer too
    # (it binds a member only when its group's demands exceed the capacity) once a margin covers the rounding of
    # the sums involved (the pass's cumulative sums run over all groups at once), so the sort is skipped.
    total = float(d.sum())
    if np.isfinite(total) and d.min() >= 0:
        margin = (4 * len(d) + 16) * np.finfo(np.float64).eps * total
        fits = np.bincount(g, weights=d, minlength=len(capacity)) + margin < capacity
        if (fits | (np.bincount(g, minlength=len(capacity)) == 0)).all():
            out[live] = d
            return out
    out[live] = _maxmin_sorted(d, g, capacity)
    return out


def _maxmin_sorted(d: np.ndarray, g: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """maxmin_fill's shares for members with a group (g >= 0), by one sort of (group, demand)."""
    order = np.lexsort((d, g))
    d, g = d[order], g[order]
    n = len(d)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(starts, sizes)
    rank = np.arange(n) - first
    remaining = np.repeat(sizes, sizes) - rank  # members from this one on, itself included
    csum = np.cumsum(d)
    before = csum - d - np.where(first > 0, csum[first - 1], 0.0)  # sum of the smaller demands of the group
    cap = capacity[g]
    # the first member (smallest demand up) whose demand cannot be met at the level the others leave sets it
    binding = before + d * remaining > cap
    level = np.full(len(starts), np.inf)
    grp_of = np.repeat(np.arange(len(starts)), sizes)
    idx = np.flatnonzero(binding)
    if len(idx):
        firsts = idx[np.r_[True, grp_of[idx][1:] != grp_of[idx][:-1]]]
        level[grp_of[firsts]] = (cap[firsts] - before[firsts]) / remaining[firsts]
    res = np.empty(n)
    res[order] = np.minimum(d, level[grp_of])
    return res


def port_share(served_pps: np.ndarray, ports: Ports) -> np.ndarray:
    """Packets per second each VM gets through its port: received and sent packets (split by rx_share) shared
    max-min over what the port's line rate leaves in their direction (less what migrations take)."""
    bits = served_pps * ports.packet_bits
    cap_rx = cap_tx = ports.capacity_bps
    if ports.taken_bps is not None:
        cap_rx = np.maximum(ports.capacity_bps - ports.taken_bps[:, 0], 0.0)
        cap_tx = np.maximum(ports.capacity_bps - ports.taken_bps[:, 1], 0.0)
    rx = maxmin_fill(bits * ports.rx_share, ports.vm_port, cap_rx)
    tx = maxmin_fill(bits * (1.0 - ports.rx_share), ports.vm_port, cap_tx)
    return np.where(ports.vm_port >= 0, (rx + tx) / ports.packet_bits, served_pps)


@dataclass
class IntervalOverhead:
    """One interval's overhead, per VM (arrays of shape (VMs,) unless noted), in MIPS and per second."""

    overhead_mips: np.ndarray  # virtualization work in the VM's own context
    backend_mips: np.ndarray  # host threads working for the VM
    components_mips: dict[str, np.ndarray]  # COMPONENTS; they add up to overhead + backend
    exits_per_s: np.ndarray  # (VMs, reasons)
    tlb_flushes_per_s: np.ndarray
    world_switches_per_s: np.ndarray
    io_demand: dict[str, np.ndarray]  # per I/O class (IO_CLASSES): operations per second asked for
    io_served: dict[str, np.ndarray]  # and carried by the path
    port_unserved_pps: np.ndarray  # network packets per second the VM's NIC port had no room for
    interrupts_per_s: np.ndarray  # interrupts per second of the VM's directly assigned functions (moderated)
    reason_mips: np.ndarray  # (reasons + 1,) summed over VMs: exit-driven overhead by reason, 'software' last


def world_switches_per_s(util: np.ndarray, vcpus: np.ndarray, vm_host: np.ndarray, host_cores: np.ndarray,
                         halts_per_s: np.ndarray, timeslice_s: float) -> np.ndarray:
    """World switches per second each VM's vCPUs cause by sharing cores with other VMs' vCPUs.

    On a host with more vCPUs than cores, a busy vCPU is preempted every time slice and every halt hands
    the core over, each to another VM's vCPU with probability 1 - cores/vCPUs. With a core per vCPU: none.
    `halts_per_s` is per vCPU. Unplaced VMs (host -1) get none.
    """
    placed = vm_host >= 0
    h = np.where(placed, vm_host, 0)
    host_vcpus = np.bincount(h[placed], weights=vcpus[placed], minlength=len(host_cores))
    with np.errstate(divide="ignore", invalid="ignore"):
        contention = np.clip(1.0 - host_cores / host_vcpus, 0.0, 1.0)
    contention = np.nan_to_num(contention)[h]
    busy = util * vcpus
    return np.where(placed, (busy / timeslice_s + halts_per_s * vcpus) * contention, 0.0)


@dataclass
class EventTerms:
    """Per-VM totals of the guest-event part of the overhead (cycles per second), before I/O and world switches."""

    cycles: np.ndarray  # (VMs,) all event cycles, refills included
    refill: np.ndarray  # (VMs,) the refill part
    flushes: np.ndarray  # (VMs,)
    exits: np.ndarray  # (VMs, len(reason_idx)): exits per second of the reasons asked for
    walk: np.ndarray  # (VMs,) extra page-walk cycles of TLB misses
    reason_cycles: np.ndarray  # (reasons + 1,) summed over VMs, cycles x MIPS-per-cycle already applied


ALL_REASONS = np.arange(len(REASONS))
NET_CLASS = [c.name for c in IO_CLASSES].index("net")


def event_terms(t: CostTables, cfg_idx: np.ndarray, vcpus: np.ndarray, event_rates: np.ndarray,
                tlb_misses: np.ndarray, reason_idx: np.ndarray = ALL_REASONS) -> EventTerms:
    """Event part of the overhead from explicit rates: event_rates (VMs, PRICED_COLUMNS) and tlb_misses
    (VMs,), both per second per vCPU. cfg_idx -1 = unplaced."""
    placed = cfg_idx >= 0
    c = np.where(placed, cfg_idx, 0)
    live = placed & ~t.native[c]
    ev = event_rates * vcpus[:, None]
    gate = live.astype(np.float64)
    exits = np.einsum("ve,ver->vr", ev, t.ev_exits[c][:, :, reason_idx]) * gate[:, None]
    by_cfg = np.stack([np.bincount(c[live], weights=ev[live, e], minlength=len(t.configs))
                       for e in range(ev.shape[1])], axis=1)
    reason = np.einsum("ce,cer,c->r", by_cfg, t.ev_reason_cycles, t.cycles_to_mips)
    return EventTerms(cycles=np.einsum("ve,ve->v", ev, t.ev_cycles[c]) * gate,
                      refill=np.einsum("ve,ve->v", ev, t.ev_refill[c]) * gate,
                      flushes=np.einsum("ve,ve->v", ev, t.ev_flushes[c]) * gate, exits=exits,
                      walk=tlb_misses * vcpus * t.walk_extra[c] * gate, reason_cycles=reason)


def interval_overhead(t: CostTables, cfg_idx: np.ndarray, vcpus: np.ndarray, event_rates: np.ndarray | EventTerms,
                      tlb_misses: np.ndarray | None, io_demand: list[np.ndarray], ws_per_s: np.ndarray,
                      reason_idx: np.ndarray = ALL_REASONS, ports: Ports | None = None,
                      util: np.ndarray | None = None) -> IntervalOverhead:
    """Overhead of every VM for one interval.

    cfg_idx: configuration per VM (-1 = unplaced: no overhead); event_rates: (VMs, PRICED_COLUMNS) per second
    per vCPU (with tlb_misses per second per vCPU), or their EventTerms already summed; io_demand: per I/O class
    of IO_CLASSES, the VM's demanded operations per second (packets, disk I/Os); ws_per_s: world switches per
    second (world_switches_per_s); reason_idx: the exit reasons (indices into REASONS) to report per VM, all by
    default; ports: the NIC port of each VM's network traffic (None: ports are not limiting, as for sizing);
    util: each VM's CPU utilisation (0..1), the share of time its vCPU runs, for the posted interrupts that find it
    blocked (None: always running).

    A directly assigned NIC function raises min(served packets, its NIC's moderation limit) interrupts per second
    (interrupts_per_s), each priced by coremodel.assigned_irq_cost; so its per-VM cost does not shrink as VMs
    share a port's packets, and it grows with the VM count as Dong et al. (HPCA 2010) measured. It also costs the
    host its fixed VF housekeeping (the mailbox) every second.
    """
    terms = event_rates if isinstance(event_rates, EventTerms) else \
        event_terms(t, cfg_idx, vcpus, event_rates, tlb_misses, reason_idx)
    placed = cfg_idx >= 0
    c = np.where(placed, cfg_idx, 0)
    live = placed & ~t.native[c]
    to_mips = t.cycles_to_mips[c]

    # a path carries no more than its cap, nor more than the VM's vCPUs could drive if they did nothing else
    served = []
    for tab, demand in zip(t.io, io_demand):
        with np.errstate(divide="ignore"):
            vcpu_cap = np.where(tab.guest_cycles[c] > 0, vcpus * t.hz[c] / tab.guest_cycles[c], np.inf)
        served.append(np.minimum(demand, np.minimum(tab.cap[c], vcpu_cap)))
    port_lost = np.zeros(len(cfg_idx))
    if ports is not None:
        j = NET_CLASS
        before = served[j]
        served[j] = np.minimum(port_share(before, ports), before)
        port_lost = before - served[j]

    # interrupts of directly assigned functions: one per packet until the NIC's moderation caps them
    irqs = [np.where(np.isfinite(tab.irq_max[c]), np.minimum(s, tab.irq_max[c]), 0.0) * placed for s, tab in
            zip(served, t.io)]
    blocked = 0.0 if util is None else np.clip(1.0 - util, 0.0, 1.0)

    def per_op(cost: str, irq_cost: str | None = None) -> np.ndarray:
        """Cycles per second of one per-operation cost (and its per-interrupt part), summed over the I/O classes."""
        out = sum(s * getattr(tab, cost)[c] for s, tab in zip(served, t.io))
        if irq_cost:
            out = out + sum(q * getattr(tab, irq_cost)[c] for q, tab in zip(irqs, t.io))
        return out

    ws = ws_per_s * t.ws_cycles[c]
    ws_refill = ws_per_s * t.ws_refill[c]
    io_exit, io_refill = per_op("exit_cycles", "irq_cycles"), per_op("refill_cycles", "irq_refill")
    io_driver, backend = per_op("driver_extra_cycles"), per_op("backend_cycles")
    backend = backend + sum(q * blocked * tab.irq_blocked_cycles[c] + placed * tab.fixed_host_cycles[c]
                            for q, tab in zip(irqs, t.io))

    gate = np.where(live, to_mips, 0.0)  # native or unplaced VMs carry exactly zero
    comp = {
        "exits": (terms.cycles - terms.refill + io_exit - io_refill) * gate,
        "tlb_refill": (terms.refill + io_refill + ws_refill) * gate,
        "page_walk": terms.walk * gate,
        "world_switch": (ws - ws_refill) * gate,
        "io_guest": io_driver * gate,
        "io_backend": backend * gate,
    }
    overhead = comp["exits"] + comp["tlb_refill"] + comp["page_walk"] + comp["world_switch"] + comp["io_guest"]

    live_f = live.astype(np.float64)
    exits = terms.exits.copy()  # I/O exits are added in place below
    n_cfg = len(t.configs)
    counts, cyc = 0.0, 0.0  # per configuration: I/O exits by reason (C, R), their cycles (C,)
    for s, q, tab in zip(served, irqs, t.io):
        for ops, ex, ex_cyc in ((s, tab.exits, tab.exit_cycles), (q, tab.irq_exits, tab.irq_cycles)):
            if ex is tab.irq_exits and not ex.any():
                continue
            op_live = ops * live_f
            x = ex[:, reason_idx]  # slice the small table first
            # an I/O class exits for one or two reasons: only their columns change (adding op x 0 leaves the
            # others as they are, bit for bit)
            for r in np.flatnonzero(x.any(axis=0)):
                exits[:, r] += op_live * x[c, r]
            by_cfg = np.bincount(c, weights=op_live, minlength=n_cfg)
            counts = counts + by_cfg[:, None] * ex
            cyc = cyc + by_cfg * ex_cyc
    # I/O exits and interrupt deliveries, attributed to their reasons by their exit counts
    cyc = cyc * t.cycles_to_mips
    total = counts.sum(axis=1)
    share = np.divide(counts, total[:, None], out=np.zeros_like(counts), where=total[:, None] > 0)
    reason = terms.reason_cycles.copy()
    reason[:-1] += (share * cyc[:, None]).sum(axis=0)
    flushes = terms.flushes
    for s, q, tab in zip(served, irqs, t.io):
        flushes = flushes + s * tab.flushes[c] + q * tab.irq_flushes[c]
    flushes = flushes + ws_per_s * t.ws_flushes[c]
    return IntervalOverhead(
        overhead_mips=overhead, backend_mips=comp["io_backend"], components_mips=comp, exits_per_s=exits,
        tlb_flushes_per_s=np.where(live, flushes, 0.0), world_switches_per_s=np.where(live, ws_per_s, 0.0),
        io_demand={k.name: d for k, d in zip(IO_CLASSES, io_demand)},
        io_served={k.name: np.where(placed, s, 0.0) for k, s in zip(IO_CLASSES, served)},
        port_unserved_pps=np.where(placed, port_lost, 0.0), interrupts_per_s=sum(irqs) * live_f,
        reason_mips=reason)


def blend(a: IntervalOverhead, b: IntervalOverhead, share: np.ndarray) -> IntervalOverhead:
    """The overhead of VMs that spend `share` (0..1 per VM) of the interval under configuration b and the
    rest under a: per-VM figures are mixed exactly. The per-reason totals are summed over VMs, so their change
    is weighted by each VM's share of the total difference (exact in sum, an approximation in the split)."""
    if not share.any():
        return a
    p = share.astype(np.float64)

    def mix(x, y):
        return x + (p[:, None] if x.ndim == 2 else p) * (y - x)

    diff = (b.overhead_mips + b.backend_mips) - (a.overhead_mips + a.backend_mips)
    weight = float((p * diff).sum() / diff.sum()) if diff.sum() != 0 else float(p.mean())
    return IntervalOverhead(
        overhead_mips=mix(a.overhead_mips, b.overhead_mips), backend_mips=mix(a.backend_mips, b.backend_mips),
        components_mips={c: mix(a.components_mips[c], b.components_mips[c]) for c in a.components_mips},
        exits_per_s=mix(a.exits_per_s, b.exits_per_s), tlb_flushes_per_s=mix(a.tlb_flushes_per_s, b.tlb_flushes_per_s),
        world_switches_per_s=mix(a.world_switches_per_s, b.world_switches_per_s),
        io_demand={k: mix(a.io_demand[k], b.io_demand[k]) for k in a.io_demand},
        io_served={k: mix(a.io_served[k], b.io_served[k]) for k in a.io_served},
        port_unserved_pps=mix(a.port_unserved_pps, b.port_unserved_pps),
        interrupts_per_s=mix(a.interrupts_per_s, b.interrupts_per_s),
        reason_mips=a.reason_mips + weight * (b.reason_mips - a.reason_mips))
