"""One interval's CPU sharing, power and SLA, for all VMs and hosts at once, with migrations inside it.

A VM that migrates during the interval is split into "slots": on its source until the migration ends
(degraded while it copies, paused during the downtime), on its destination after, plus what the migration
costs each end. Each slot asks for its demand times the share of the interval it covers; a host serves all
its slots the same fraction when they ask for more than it has. A host is on for the share of the interval
some slot is on it; its power is its curve at its utilisation while on, times that share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.engine.sharing import share_cpu
from consolidate.hardware.power import power_w


@dataclass(frozen=True)
class MigrationWindow:
    """A migration as the interval sees it, times in seconds from the interval start (may lie outside it)."""

    vm: int
    source: int
    destination: int
    start: float
    end: float  # completion (inf while still running)
    downtime_s: float
    source_extra_mips: float  # CPU the migration costs the source while it runs
    destination_extra_mips: float  # and the destination (CloudSim: a share of the VM's MIPS)
    # False for a migration the VM passes through: CloudSim 3.0.3 can move a VM twice in one round, both from its
    # source; it ends on the second destination, the first only reserves its share while the copy runs
    carries_vm: bool = True


@dataclass
class IntervalAccount:
    vm_served_mips: np.ndarray  # (VMs,) averaged over the interval
    vm_migration_loss_mips: np.ndarray  # (VMs,) demand not asked for because of migration (degradation, downtime)
    host_request_mips: np.ndarray  # (hosts,)
    host_served_mips: np.ndarray
    host_on_fraction: np.ndarray  # (hosts,) share of the interval the host is on
    host_power_w: np.ndarray  # average over the interval
    host_overloaded: np.ndarray  # (hosts,) share of the interval the host is asked for more than its capacity
    host_vms: np.ndarray  # (hosts,) VMs on the host at the interval start


def account(dt: float, demand_mips: np.ndarray, backend_mips: np.ndarray, vm_host: np.ndarray,
            vm_cap_mips: np.ndarray, host_capacity_mips: np.ndarray, curves_w: np.ndarray, host_type: np.ndarray,
            migrations: list[MigrationWindow], cpu_degradation: float, power_off_idle: bool,
            zero_power_when_idle: bool, migration_violates: bool = False,
            gap_s: np.ndarray | None = None, lost_s: np.ndarray | None = None) -> IntervalAccount:
    """Account one interval of length dt (s). demand_mips is each VM's effective demand in its own context,
    backend_mips what host threads do for it; vm_host is the placement at the interval start.
    migration_violates: count a migration's destination as short of CPU while it runs (CloudSim 3.0.3's
    SLATAH: HostDynamicWorkload.updateVmsProcessing asks the destination for the VM's full request and gives it
    10%; the source gives 90% but counts it divided by 0.9, so it is short only when overloaded). gap_s:
    seconds per VM of service gap (a VF unplugged or re-plugged) inside the interval: demand lost like a
    migration's downtime. lost_s: seconds per VM whose work a host failure destroyed (the whole interval for a
    VM whose host failed in it): not asked on the start host, and not a migration's loss. A window whose source
    is -1 is a VM booting on its destination (a restart after a failure)."""
    V, H = len(demand_mips), len(host_capacity_mips)
    presence = np.where(vm_host >= 0, 1.0, 0.0)  # share of the interval on the start host
    ask = np.ones(V)  # share of demand asked for on the start host, relative to full presence
    loss = np.zeros(V)
    extra_host, extra_req, extra_vm, extra_pres = [], [], [], []
    for m in migrations:
        a = min(max(m.start / dt, 0.0), 1.0)
        e = min(max(m.end / dt, 0.0), 1.0)
        run_end = min(max((m.end - m.downtime_s) / dt, 0.0), 1.0)
        if m.end <= 0 or m.start >= dt:
            continue
        if not m.carries_vm:
            if m.destination_extra_mips and e > a:
                extra_host.append(m.destination)
                extra_req.append(m.destination_extra_mips * (e - a))
                extra_vm.append(-1)
                extra_pres.append(e)
            continue
        d = demand_mips[m.vm]
        # on the source: full demand before the migration, degraded while copying, nothing while paused
        copying = max(run_end - a, 0.0)
        paused = max(e - max(run_end, a), 0.0)
        presence[m.vm] = e
        ask[m.vm] = a + copying * (1 - cpu_degradation)
        loss[m.vm] += d * (copying * cpu_degradation + paused)
        if e < 1.0:  # arrived: full demand on the destination for the rest of the interval
            extra_host.append(m.destination)
            extra_req.append(d * (1 - e))
            extra_vm.append(m.vm)
            extra_pres.append(1 - e)
        span = e - a
        if span > 0:
            if m.destination_extra_mips:
                extra_host.append(m.destination)
                extra_req.append(m.destination_extra_mips * span)
                extra_vm.append(-1)
                extra_pres.append(e)  # the destination is on from the migration's start
            if m.source_extra_mips:
                extra_host.append(m.source)
                extra_req.append(m.source_extra_mips * span)
                extra_vm.append(-1)
                extra_pres.append(e)
    if gap_s is not None:
        # taken from the VM's share on its start host (a re-plug happens at the destination: the VM's loss is
        # right, the host it is charged to is approximate for that one interval)
        g = np.minimum(gap_s / dt, ask * (presence > 0))
        ask = ask - g
        loss += demand_mips * g
    if lost_s is not None:
        ask = ask - np.minimum(lost_s / dt, ask * (presence > 0))
    slot_host = np.concatenate([vm_host, np.array(extra_host, dtype=np.int64)])
    slot_req = np.concatenate([demand_mips * ask, np.array(extra_req)])
    slot_cap = np.concatenate([vm_cap_mips * np.maximum(ask, 1e-12), np.full(len(extra_req), np.inf)])
    slot_backend = np.concatenate([backend_mips * ask, np.zeros(len(extra_req))])
    slot_pres = np.concatenate([presence, np.array(extra_pres)])
    served, host_req, host_served = share_cpu(slot_req, slot_host, slot_cap, host_capacity_mips, slot_backend)
    vm_served = served[:V].copy()
    extra_vm_arr = np.array(extra_vm, dtype=np.int64)
    if len(extra_vm_arr):
        own = extra_vm_arr >= 0
        np.add.at(vm_served, extra_vm_arr[own], served[V:][own])
    placed = slot_host >= 0
    on = np.zeros(H)
    np.maximum.at(on, slot_host[placed], slot_pres[placed])
    if not power_off_idle:
        on[:] = 1.0
    util = np.divide(host_served, host_capacity_mips * on, out=np.zeros(H), where=on > 0)
    power = np.where(on > 0, power_w(util, curves_w, host_type) * on, 0.0)
    if zero_power_when_idle:
        power = np.where(host_served > 0, power, 0.0)
    host_vms = np.bincount(vm_host[vm_host >= 0], minlength=H)
    # Overload inside the interval: a host asked for more than its capacity at the start stays so until the
    # last VM leaving it has gone (or all interval, if it is still over after its arrivals and departures);
    # a host pushed over by arrivals is over from the first arrival on.
    full = demand_mips + backend_mips
    placed0 = vm_host >= 0
    at_start = np.bincount(vm_host[placed0], weights=full[placed0], minlength=H)
    at_end = at_start.copy()
    last_leave = np.zeros(H)
    first_arrive = np.ones(H)
    for m in migrations:
        e = min(max(m.end / dt, 0.0), 1.0)
        if m.end <= 0 or m.start >= dt or e >= 1.0 or not m.carries_vm:
            continue
        if m.source >= 0:
            at_end[m.source] -= full[m.vm]
            last_leave[m.source] = max(last_leave[m.source], e)
        at_end[m.destination] += full[m.vm]
        first_arrive[m.destination] = min(first_arrive[m.destination], e)
    cap = host_capacity_mips * (1 + 1e-9)
    over_start, over_end = at_start > cap, at_end > cap
    overloaded = np.where(over_start, np.where(over_end, 1.0, last_leave),
                          np.where(over_end, 1.0 - first_arrive, 0.0))
    overloaded = np.maximum(overloaded, np.where(host_req > cap, 1.0, 0.0))  # over on average: all interval
    # a VM asking for more than its vCPUs can get on this host's cores is not served in full either: the host
    # is short of what is asked of it (CloudSim counts a host's allocated < requested MIPS, caps included)
    asked = np.bincount(slot_host[placed], weights=(slot_req + slot_backend)[placed], minlength=H)
    overloaded = np.maximum(overloaded, np.where(asked > host_served + 1e-6 * host_capacity_mips, 1.0, 0.0))
    if migration_violates and migrations:
        overloaded = np.maximum(overloaded, _migration_busy(migrations, dt, H))
    overloaded = np.minimum(overloaded, on)
    return IntervalAccount(vm_served_mips=vm_served, vm_migration_loss_mips=loss, host_request_mips=host_req,
                           host_served_mips=host_served, host_on_fraction=on, host_power_w=power,
                           host_overloaded=overloaded,
                           host_vms=host_vms)


def _migration_busy(migrations: list[MigrationWindow], dt: float, n_hosts: int) -> np.ndarray:
    """Share of the interval (0..1) each host is the destination of at least one running migration (union of
    windows)."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for m in migrations:
        a, e = min(max(m.start / dt, 0.0), 1.0), min(max(m.end / dt, 0.0), 1.0)
        if e > a:
            spans.setdefault(m.destination, []).append((a, e))
    busy = np.zeros(n_hosts)
    for h, iv in spans.items():
        iv.sort()
        total, lo, hi = 0.0, iv[0][0], iv[0][1]
        for a, e in iv[1:]:
            if a > hi:
                total, lo, hi = total + hi - lo, a, e
            else:
                hi = max(hi, e)
        busy[h] = total + hi - lo
    return busy
