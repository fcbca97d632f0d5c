"""Price every guest event and I/O packet once per configuration, so that each interval is a gather and a
multiply over all VMs.

A configuration is one (VM group, host type) pair; a scenario has a handful, whatever its VM count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.costmodel.config import Resolved
from consolidate.hardware import catalog as cat
from consolidate.hardware import coremodel as cm
from consolidate.hardware.assignment import IO_CLASSES, POOL_OF_PATH, PORT, VF, IoClass
from consolidate.scenario.model import HostType
from consolidate.workload.profiles import EVENT_COLUMNS

# trace column -> core-model guest event (tlb_misses_per_s is priced as extra page-walk cycles instead)
EVENT_OF_COLUMN = {
    "ctx_switches_per_s": "cr3_write",
    "page_faults_per_s": "page_fault",
    "pte_writes_per_s": "pte_write",
    "syscalls_per_s": "syscall",
    "timer_irqs_per_s": "timer_irq",
    "ipis_per_s": "ipi",
    "halts_per_s": "halt",
    "cpuid_per_s": "cpuid",
    "msr_accesses_per_s": "msr_access",
}
PRICED_COLUMNS = tuple(c for c in EVENT_COLUMNS if c in EVENT_OF_COLUMN)
TLB_COLUMN = "tlb_misses_per_s"
REASONS = tuple(cat.exit_reasons())
SOFTWARE = "software"  # cycles of handler work outside an exit: BT callouts, PV hypercalls, injections
REASON_LABELS = REASONS + (SOFTWARE,)


@dataclass(frozen=True)
class IoTable:
    """Per configuration, per packet (or disk I/O): see coremodel.IoCost."""

    guest_cycles: np.ndarray  # (C,) all guest-side cycles of a packet: driver, exits, interrupt delivery
    exit_cycles: np.ndarray  # (C,) exits and interrupt delivery, guest side
    driver_extra_cycles: np.ndarray  # (C,) guest driver cycles beyond a native driver's
    backend_cycles: np.ndarray  # (C,)
    refill_cycles: np.ndarray  # (C,) part of exit_cycles
    flushes: np.ndarray  # (C,)
    exits: np.ndarray  # (C, R)
    cap: np.ndarray  # (C,) packets (or I/Os) per second
    path: tuple[str, ...]  # (C,) path name
    # A directly assigned NIC function raises interrupts as its moderation allows: min(packets, irq_max) per second
    # per VM (irq_max inf: the path's own batching, already in the per-packet figures above). Per interrupt:
    irq_max: np.ndarray  # (C,) interrupts per second at most (the host type's NIC's, or inf)
    irq_cycles: np.ndarray  # (C,) guest cycles (coremodel.assigned_irq_cost)
    irq_refill: np.ndarray  # (C,) the TLB refill part of irq_cycles
    irq_flushes: np.ndarray  # (C,)
    irq_exits: np.ndarray  # (C, R)
    irq_blocked_cycles: np.ndarray  # (C,) host cycles of one posted interrupt to a blocked vCPU
    fixed_host_cycles: np.ndarray  # (C,) host cycles per second per VM of an assigned function (VF mailbox)


@dataclass(frozen=True)
class CostTables:
    """Everything the per-interval model needs, indexed by configuration c.

    ev_*: (C, E) over PRICED_COLUMNS; ev_exits: (C, E, R); ev_reason_cycles: (C, E, R + 1) with the last
    column for software work; walk_extra: (C,) extra cycles per TLB miss of the reference TLB (coremodel.
    extra_walk_cycles: the CPU's misses at its reach and the working set, nested or splintered, over native);
    ws_*: world switch;
    cycles_to_mips: (C,) MIPS of one cycle per second on that host (its MIPS per core / its clock).
    """

    configs: tuple[Resolved, ...]
    ev_cycles: np.ndarray
    ev_refill: np.ndarray
    ev_flushes: np.ndarray
    ev_exits: np.ndarray
    ev_reason_cycles: np.ndarray
    walk_extra: np.ndarray
    ws_cycles: np.ndarray
    ws_refill: np.ndarray
    ws_flushes: np.ndarray
    native: np.ndarray
    cycles_to_mips: np.ndarray
    hz: np.ndarray  # (C,) the host CPU's clock
    io: tuple[IoTable, ...]  # per class of IO_CLASSES

    @property
    def io_exits_any(self) -> np.ndarray:
        """(R,) exits per operation (or interrupt) summed over every I/O class and configuration (which reasons can
        occur)."""
        return sum(tab.exits.sum(axis=0) + tab.irq_exits.sum(axis=0) for tab in self.io)


def nic_irq_max(host_type: HostType) -> float:
    """Interrupts per second one vector of the host type's NIC raises at most (its first NIC whose moderation is
    known, the host type's override first); inf when no NIC says."""
    nics = cat.nics()
    for n in host_type.nics:
        rate = n.max_interrupts_per_s or nics[n.model].max_interrupts_per_s
        if rate:
            return float(rate)
    return np.inf


def _io_table(configs: list[Resolved], io_class: IoClass) -> IoTable:
    paths = cat.io_paths()
    native_driver = paths[io_class.native_path].guest_cycles_per_packet
    rows, irq = [], []
    hk = cat.vf_housekeeping()
    for r in configs:
        name = r.path(io_class.name)
        path = paths[name]
        if r.config.mode == "native":
            rows.append((0.0, 0.0, 0.0, 0.0, 0.0, {}, np.inf, name, 0.0))
            irq.append((np.inf, 0.0, 0.0, 0.0, {}, 0.0, 0.0))
            continue
        eff = cm.effective(r.cpu, r.hypervisor, r.config)
        assigned = io_class.name == "net" and POOL_OF_PATH.get(name, -1) in (PORT, VF)
        irq_max = nic_irq_max(r.host_type) if assigned and eff.mode == "hw" else np.inf
        coalesced = bool(np.isfinite(irq_max))
        c = cm.io_cost(path, r.cpu, r.hypervisor, r.config, line_rate_bps=r.host_type.network_bps,
                       interrupts=not coalesced)
        if coalesced:
            ic = cm.assigned_irq_cost(r.cpu, r.hypervisor, r.config, eff)
            irq.append((irq_max, ic.cycles, ic.refill_cycles, ic.flushes, ic.exits,
                        cm.posted_wakeup_cycles(r.cpu, r.hypervisor, r.config, eff),
                        hk.mailbox_messages_per_s * hk.host_cycles_per_message))
        else:
            irq.append((np.inf, 0.0, 0.0, 0.0, {}, 0.0,
                        hk.mailbox_messages_per_s * hk.host_cycles_per_message if assigned else 0.0))
        extra = max(0.0, (path.guest_cycles_per_packet - native_driver) * cm.io_scale(r.cpu))
        rows.append((c.exit_cycles, extra, c.backend_cycles, c.refill_cycles, c.flushes, c.exits, c.cap_pps, name,
                     c.guest_cycles))
    exits = np.array([[row[5].get(rr, 0.0) for rr in REASONS] for row in rows]).reshape(len(rows), len(REASONS))
    col = lambda i: np.array([row[i] for row in rows], dtype=np.float64)  # noqa: E731
    icol = lambda i: np.array([row[i] for row in irq], dtype=np.float64)  # noqa: E731
    irq_exits = np.array([[row[4].get(rr, 0.0) for rr in REASONS] for row in irq]).reshape(len(irq), len(REASONS))
    return IoTable(guest_cycles=col(8), exit_cycles=col(0), driver_extra_cycles=col(1), backend_cycles=col(2), refill_cycles=col(3),
                   flushes=col(4), exits=exits, cap=col(6), path=tuple(row[7] for row in rows),
                   irq_max=icol(0), irq_cycles=icol(1), irq_refill=icol(2), irq_flushes=icol(3), irq_exits=irq_exits,
                   irq_blocked_cycles=icol(5), fixed_host_cycles=icol(6))


def build_tables(configs: list[Resolved]) -> CostTables:
    """Price every event and path for each configuration (cycles, exits, flushes)."""
    C, E, R = len(configs), len(PRICED_COLUMNS), len(REASONS)
    ev_cycles, ev_refill, ev_flushes = np.zeros((C, E)), np.zeros((C, E)), np.zeros((C, E))
    ev_exits, ev_reason = np.zeros((C, E, R)), np.zeros((C, E, R + 1))
    walk_extra, ws_cycles, ws_refill, ws_flushes = np.zeros(C), np.zeros(C), np.zeros(C), np.zeros(C)
    native, to_mips, hz = np.zeros(C, bool), np.zeros(C), np.zeros(C)
    for c, r in enumerate(configs):
        ht = r.host_type
        hz[c] = r.cpu.frequency_ghz * 1e9  # the host's own clock (config.resolve moved the CPU to it)
        to_mips[c] = ht.mips_per_core / hz[c]
        eff = cm.effective(r.cpu, r.hypervisor, r.config)
        if eff.mode == "native":
            native[c] = True
            continue
        for e, column in enumerate(PRICED_COLUMNS):
            steps = cm.event_steps(EVENT_OF_COLUMN[column], r.cpu, r.hypervisor, r.config, eff)
            cost = cm.steps_cost(steps, r.cpu, r.hypervisor, r.config, eff)
            ev_cycles[c, e], ev_refill[c, e], ev_flushes[c, e] = cost.cycles, cost.refill_cycles, cost.flushes
            for reason, n in cost.exits.items():
                ev_exits[c, e, REASONS.index(reason)] = n
            # attribute each step to the exit that triggered it (software work before any exit: 'software'),
            # then scale so the reasons add up to the event's cost with its refills counted once per run
            owner = R
            raw = np.zeros(R + 1)
            for s in steps:
                if s.kind == "exit":
                    owner = REASONS.index(s.reason)
                raw[owner] += cm.step_cycles(s, r.cpu, r.hypervisor, r.config, eff) * (s.times if s.kind == "exit" else 1)
            if raw.sum() > 0:
                ev_reason[c, e] = raw * (cost.cycles / raw.sum())
        walk_extra[c] = cm.extra_walk_cycles(r.cpu, eff, r.config)
        ws_cycles[c] = cm.world_switch_cycles(r.cpu, r.hypervisor, r.config)
        flush = not eff.on("vpid") or eff.mode != "hw"
        ws_flushes[c] = 1.0 if flush else 0.0
        ws_refill[c] = cm.tlb_refill_cycles(r.cpu, eff, r.config) if flush else 0.0
    return CostTables(configs=tuple(configs), ev_cycles=ev_cycles, ev_refill=ev_refill, ev_flushes=ev_flushes,
                      ev_exits=ev_exits, ev_reason_cycles=ev_reason, walk_extra=walk_extra, ws_cycles=ws_cycles,
                      ws_refill=ws_refill, ws_flushes=ws_flushes, native=native, cycles_to_mips=to_mips, hz=hz,
                      io=tuple(_io_table(configs, c) for c in IO_CLASSES))
