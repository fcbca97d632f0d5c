"""The virtualization overhead of all VMs in one interval, with array arithmetic.

For VM v under configuration c (cycles per second, then MIPS through the host's MIPS per cycle):

    events      = sum over e of rate_e * vCPUs * cost_e(c)         (exits, handlers, injections, refills)
    page walks  = tlb_misses * vCPUs * walk_extra(c)               (nested walks are longer than native)
    world sw.   = world_switches * cost_ws(c)                      (vCPUs sharing a core)
    I/O, guest  = served_pps * (exit + driver-extra cycles)(c)     (+ the same for disk I/Os)
    I/O, host   = served_pps * backend_cycles(c)                   (QEMU / vhost threads, host side)
    overhead    = events + page walks + world switches + I/O guest;   backend = I/O host

served_pps = min(demanded pps, the path's cap, vCPUs x clock / guest cycles per packet); the rest is
unserved I/O. Nothing here loops over VMs: a
loop over the handful of configurations does the matrix products for exits by reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.costmodel.tables import REASON_LABELS, REASONS, CostTables

COMPONENTS = ("exits", "tlb_refill", "page_walk", "world_switch", "io_guest", "io_backend")


@dataclass
class IntervalOverhead:
    """One interval's overhead, per VM (arrays of shape (VMs,) unless noted), in MIPS and per second."""

    overhead_mips: np.ndarray  # virtualization work in the VM's own context
    backend_mips: np.ndarray  # host threads working for the VM
    components_mips: dict[str, np.ndarray]  # COMPONENTS; they add up to overhead + backend
    exits_per_s: np.ndarray  # (VMs, reasons)
    tlb_flushes_per_s: np.ndarray
    world_switches_per_s: np.ndarray
    net_pps_demand: np.ndarray
    net_pps_served: np.ndarray
    disk_iops_demand: np.ndarray
    disk_iops_served: np.ndarray
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
                      tlb_misses: np.ndarray | None, net_pps: np.ndarray, disk_iops: np.ndarray,
                      ws_per_s: np.ndarray, reason_idx: np.ndarray = ALL_REASONS) -> IntervalOverhead:
    """Overhead of every VM for one interval.

    cfg_idx: configuration per VM (-1 = unplaced: no overhead); event_rates: (VMs, PRICED_COLUMNS) per second
    per vCPU (with tlb_misses per second per vCPU), or their EventTerms already summed; net_pps, disk_iops:
    the VM's demanded I/O rates; ws_per_s: world switches per second (world_switches_per_s); reason_idx: the
    exit reasons (indices into REASONS) to report per VM, all by default.
    """
    terms = event_rates if isinstance(event_rates, EventTerms) else \
        event_terms(t, cfg_idx, vcpus, event_rates, tlb_misses, reason_idx)
    placed = cfg_idx >= 0
    c = np.where(placed, cfg_idx, 0)
    live = placed & ~t.native[c]
    to_mips = t.cycles_to_mips[c]

    # a path carries no more than its cap, nor more than the VM's vCPUs could drive if they did nothing else
    with np.errstate(divide="ignore"):
        vcpu_net = np.where(t.net.guest_cycles[c] > 0, vcpus * t.hz[c] / t.net.guest_cycles[c], np.inf)
        vcpu_disk = np.where(t.disk.guest_cycles[c] > 0, vcpus * t.hz[c] / t.disk.guest_cycles[c], np.inf)
    net_served = np.minimum(net_pps, np.minimum(t.net.cap[c], vcpu_net))
    disk_served = np.minimum(disk_iops, np.minimum(t.disk.cap[c], vcpu_disk))
    ws = ws_per_s * t.ws_cycles[c]
    ws_refill = ws_per_s * t.ws_refill[c]
    io_exit = net_served * t.net.exit_cycles[c] + disk_served * t.disk.exit_cycles[c]
    io_refill = net_served * t.net.refill_cycles[c] + disk_served * t.disk.refill_cycles[c]
    io_driver = net_served * t.net.driver_extra_cycles[c] + disk_served * t.disk.driver_extra_cycles[c]
    backend = net_served * t.net.backend_cycles[c] + disk_served * t.disk.backend_cycles[c]

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
    net_live, disk_live = net_served * live_f, disk_served * live_f
    net_x, disk_x = t.net.exits[:, reason_idx], t.disk.exits[:, reason_idx]  # slice the small table first
    exits = terms.exits
    if net_x.any():
        exits = exits + net_live[:, None] * net_x[c]
    if disk_x.any():
        exits = exits + disk_live[:, None] * disk_x[c]
    # I/O exits and interrupt deliveries, attributed to their reasons by their exit counts
    n_cfg = len(t.configs)
    net_sum = np.bincount(c, weights=net_live, minlength=n_cfg)
    disk_sum = np.bincount(c, weights=disk_live, minlength=n_cfg)
    counts = net_sum[:, None] * t.net.exits + disk_sum[:, None] * t.disk.exits  # (C, R)
    cyc = (net_sum * t.net.exit_cycles + disk_sum * t.disk.exit_cycles) * t.cycles_to_mips  # (C,)
    total = counts.sum(axis=1)
    share = np.divide(counts, total[:, None], out=np.zeros_like(counts), where=total[:, None] > 0)
    reason = terms.reason_cycles.copy()
    reason[:-1] += (share * cyc[:, None]).sum(axis=0)
    flushes = terms.flushes + net_served * t.net.flushes[c] + disk_served * t.disk.flushes[c] + ws_per_s * t.ws_flushes[c]
    return IntervalOverhead(
        overhead_mips=overhead, backend_mips=comp["io_backend"], components_mips=comp, exits_per_s=exits,
        tlb_flushes_per_s=np.where(live, flushes, 0.0), world_switches_per_s=np.where(live, ws_per_s, 0.0),
        net_pps_demand=net_pps, net_pps_served=np.where(placed, net_served, 0.0),
        disk_iops_demand=disk_iops, disk_iops_served=np.where(placed, disk_served, 0.0), reason_mips=reason)


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
        net_pps_demand=mix(a.net_pps_demand, b.net_pps_demand), net_pps_served=mix(a.net_pps_served, b.net_pps_served),
        disk_iops_demand=mix(a.disk_iops_demand, b.disk_iops_demand),
        disk_iops_served=mix(a.disk_iops_served, b.disk_iops_served),
        reason_mips=a.reason_mips + weight * (b.reason_mips - a.reason_mips))
