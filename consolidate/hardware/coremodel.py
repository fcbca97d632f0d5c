"""The micro-architectural core model: what one virtualization event costs, in cycles, on a given CPU
under a given hypervisor and configuration. Pure functions of catalog entries; no SimPy, no state.

Equations (docs/core-model.md gives their derivation and inputs):

    exit cost   c_exit(r) = roundtrip(cpu) + overhead(hv) + handler(hv, r) [+ emulate] [+ user exit]
                            [+ type-2 host switch] [+ TLB refill, when the TLB is not tagged]
    TLB refill  refill    = min(TLB entries, working-set pages) x walk_cycles
    page walk   native refs = 1 + (L - 1)(1 - h_pwc);  nested refs = g + (g + 1) n,
                with g and n the guest and host walks after page-walk-cache hits
                (h_pwc = 0 gives (L_g + 1)(L_h + 1) - 1 = 24 for 4-level on 4-level)
    walk cycles refs x (sum over cache levels of share x latency)

Cycle costs do not depend on the clock frequency; `cycles_to_s` turns them into time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from consolidate.hardware.catalog import Cpu, Hypervisor, IoPath, cpus, exit_reasons

Mode = Literal["hw", "bt", "pv", "native"]
Paging = Literal["ept", "npt", "shadow", "native"]
FEATURES = ("vpid", "ept", "apicv", "posted_interrupts", "tpr_shadow", "vmcs_shadowing", "ple", "preemption_timer")
# names of the features on AMD-V, for messages
AMD_NAMES = {"vpid": "asid", "ept": "npt", "apicv": "avic", "posted_interrupts": "avic"}


class ConfigError(ValueError):
    """A configuration asks for something the CPU or hypervisor cannot do."""


@dataclass(frozen=True)
class VirtConfig:
    """How a VM is virtualized.

    mode: `hw` (VT-x/AMD-V), `bt` (binary translation), `pv` (paravirtual guest) or `native` (no VMM).
    paging: `ept`/`npt` (nested paging), `shadow`, or None for the best the CPU and hypervisor offer.
    Feature switches left as None mean "use it if the CPU has it and the hypervisor uses it"; False turns a
    feature off; True demands it (a ConfigError if the CPU lacks it).
    guest_levels, host_levels: paging levels (4, or 5 with LA57); host_page: page size backing guest memory.
    working_set_pages: pages the guest touches between transitions, which a TLB flush makes it refill.
    timer_fastpath: inject an already-expired TSC deadline on the same VM entry instead of arming the
    preemption timer with zero and taking one more exit (KVM since kvm-unit-tests commit cfbd129c).
    """

    mode: Mode = "hw"
    paging: Paging | None = None
    vpid: bool | None = None
    apicv: bool | None = None
    posted_interrupts: bool | None = None
    tpr_shadow: bool | None = None
    vmcs_shadowing: bool | None = None
    ple: bool | None = None
    preemption_timer: bool | None = None
    guest_levels: int = 4
    host_levels: int = 4
    host_page: Literal["4k", "2m", "1g"] = "4k"
    working_set_pages: int = 64
    timer_fastpath: bool = True


@dataclass(frozen=True)
class Effective:
    """The features actually in force for one (CPU, hypervisor, configuration)."""

    mode: Mode
    nested: bool  # nested paging (EPT/NPT) in force
    shadow: bool  # shadow page tables in force
    features: dict[str, bool] = field(default_factory=dict)

    def on(self, feature: str) -> bool:
        return self.features.get(feature, False)


def effective(cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig) -> Effective:
    """Resolve which features are in force; raises ConfigError for a feature the CPU lacks but cfg demands."""
    if cfg.mode == "native" or hv is None:
        return Effective(mode="native", nested=False, shadow=False, features={f: False for f in FEATURES})
    if cfg.mode not in hv.modes:
        raise ConfigError(f"hypervisor {hv.name} does not run mode {cfg.mode!r} (got {cfg.mode!r}, expected one of: "
                          f"{', '.join(hv.modes)})")
    if cfg.guest_levels == 5 and not cpu.features.get("la57", False):
        raise ConfigError(f"5-level paging needs LA57, which {cpu.name} lacks (got guest_levels 5, expected 4)")
    feats = {}
    for f in FEATURES:
        want = getattr(cfg, f) if f != "ept" else None
        have = cpu.has(f) and hv.uses.get(f, False) and cfg.mode == "hw"
        if want is True and not cpu.has(f):
            name = AMD_NAMES.get(f, f) if cpu.vendor == "amd" else f
            raise ConfigError(f"{name} requested but {cpu.name} ({cpu.family}) lacks it")
        feats[f] = have if want is None else (want and have)
    if cfg.mode != "hw":
        nested = False
    elif cfg.paging in ("ept", "npt"):
        if not cpu.has("ept"):
            name = "npt" if cpu.vendor == "amd" else "ept"
            raise ConfigError(f"{name} requested but {cpu.name} ({cpu.family}) lacks it (expected paging: shadow)")
        nested = True
    elif cfg.paging == "shadow":
        nested = False
    else:
        nested = cpu.has("ept") and hv.uses.get("ept", False)
    feats["ept"] = nested
    shadow = cfg.mode in ("hw", "bt") and not nested
    return Effective(mode=cfg.mode, nested=nested, shadow=shadow, features=feats)


# --- page walks and TLB ------------------------------------------------------------------------------------

def walk_references(guest_levels: int = 4, host_levels: int | None = None, pwc_hit: float = 0.0) -> float:
    """Memory references of one page walk.

    Native (host_levels None): 1 + (L - 1)(1 - pwc_hit): the leaf always, upper levels unless the page-walk
    cache hits. Nested: every guest-physical address the walk touches (g guest table reads plus the final
    data address) is translated by a host walk of n references: g + (g + 1) n, which is
    (L_g + 1)(L_h + 1) - 1 = 24 for 4-level on 4-level with no cache hits.
    """
    g = 1 + (guest_levels - 1) * (1 - pwc_hit)
    if host_levels is None:
        return g
    n = 1 + (host_levels - 1) * (1 - pwc_hit)
    return g + (g + 1) * n


def host_levels_for(page: str, levels: int = 4) -> int:
    """Host walk levels when guest memory is backed by `page` pages: a 2 MB page ends the walk one level
    early, a 1 GB page two levels early."""
    return levels - {"4k": 0, "2m": 1, "1g": 2}[page]


def reference_cycles(cpu: Cpu) -> float:
    """Mean latency of one page-table reference, from where page-table entries are found (cycles)."""
    w = cpu.walk
    return (w["pte_l1"] * w["l1_cycles"] + w["pte_l2"] * w["l2_cycles"] + w["pte_llc"] * w["llc_cycles"]
            + w["pte_mem"] * w["mem_cycles"])


def walk_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Cycles of one TLB-miss page walk under the effective paging (native, shadow or nested)."""
    h = cpu.walk["pwc_hit"]
    host = host_levels_for(cfg.host_page, cfg.host_levels) if eff.nested else None
    return walk_references(cfg.guest_levels, host, h) * reference_cycles(cpu)


def extra_walk_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Extra cycles of one TLB miss against native (zero unless paging is nested)."""
    native = walk_references(cfg.guest_levels, None, cpu.walk["pwc_hit"]) * reference_cycles(cpu)
    return walk_cycles(cpu, eff, cfg) - native


def tlb_entries(cpu: Cpu) -> int:
    """4 KB translations the TLB hierarchy holds (L1 DTLB + STLB)."""
    return int(cpu.tlb["l1d_4k"] + cpu.tlb["stlb_4k"])


TLB_REFERENCE_CPU = "intel-haswell"  # trace and profile TLB-miss rates are for this CPU's TLB


def tlb_miss_scale(cpu: Cpu) -> float:
    """Factor on a TLB-miss rate given for the reference TLB (Haswell, 1,088 4K entries) on `cpu`: a working
    set larger than the TLB's reach misses in inverse proportion to the reach."""
    return tlb_entries(cpus()[TLB_REFERENCE_CPU]) / tlb_entries(cpu)


def tlb_refill_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Cycles to refill the TLB after a full flush: min(entries, working set) walks."""
    return min(tlb_entries(cpu), cfg.working_set_pages) * walk_cycles(cpu, eff, cfg)


def flushes_on_transition(eff: Effective) -> bool:
    """Without VPID/ASID every VM entry and exit flushes the whole TLB."""
    return eff.mode == "hw" and not eff.on("vpid")


# --- exits ---------------------------------------------------------------------------------------------------

IO_REFERENCE_CPU = "intel-haswell"  # the CPU the per-packet figures of devices.yaml hold for


def software_scale(cpu: Cpu, hv: Hypervisor | None) -> float:
    """Factor on a hypervisor's software cycles on `cpu`: its figures hold for the CPU it was calibrated on,
    and the same code takes fewer cycles on a core that retires more instructions per clock."""
    if hv is None:
        return 1.0
    return cpus()[hv.calibrated_on].ipc_relative / cpu.ipc_relative


def io_scale(cpu: Cpu) -> float:
    """Factor on the per-packet driver and backend cycles of devices.yaml on `cpu`."""
    return cpus()[IO_REFERENCE_CPU].ipc_relative / cpu.ipc_relative


def exit_cost_cycles(reason: str, cpu: Cpu, hv: Hypervisor, cfg: VirtConfig, *, user_space: bool | None = None,
                     emulate: bool = False, eff: Effective | None = None) -> float:
    """Cycles of one VM exit of `reason`, from the exit to the guest resuming, including the TLB refill it
    causes without VPID/ASID. `user_space` forwards it to the user-space device model (default: the
    hypervisor's choice for that reason); `emulate` adds instruction decode and emulation.
    """
    reasons = exit_reasons()
    if reason not in reasons:
        raise ValueError(f"unknown exit reason {reason!r} (expected one of: {', '.join(reasons)})")
    eff = eff or effective(cpu, hv, cfg)
    if eff.mode != "hw":
        raise ConfigError(f"no VM exits in mode {eff.mode!r}")
    if user_space is None:
        user_space = reason in hv.user_space_reasons
    sw = hv.exit_overhead_cycles + reasons[reason]["handler_cycles"] * hv.handler_scale
    if emulate:
        sw += hv.emulate_cycles
    if user_space:
        sw += hv.user_exit_cycles
    if hv.type == 2 and (user_space or reason in hv.type2_reasons):
        sw += hv.type2_switch_cycles
    c = cpu.roundtrip_cycles + sw * software_scale(cpu, hv)
    if flushes_on_transition(eff):
        c += tlb_refill_cycles(cpu, eff, cfg)
    return c


def exit_costs_cycles(cpu: Cpu, hv: Hypervisor, cfg: VirtConfig) -> dict[str, float]:
    """Cycles of one exit of every reason on its default path."""
    eff = effective(cpu, hv, cfg)
    return {r: exit_cost_cycles(r, cpu, hv, cfg, eff=eff) for r in exit_reasons()}


def amd_counterpart(reason: str) -> str | None:
    """The AMD-V (SVM) exit code that corresponds to a VT-x exit reason, None where there is none."""
    return exit_reasons()[reason]["amd"]


def world_switch_cycles(cpu: Cpu, hv: Hypervisor, cfg: VirtConfig) -> float:
    """Cycles to switch a core from one VM's vCPU to another's: the hypervisor's context switch and
    VMCS/VMCB load, plus a TLB refill when entries are not tagged. Zero in native mode."""
    eff = effective(cpu, hv, cfg)
    if eff.mode == "native":
        return 0.0
    c = hv.world_switch_cycles * software_scale(cpu, hv)
    if not eff.on("vpid") or eff.mode != "hw":
        c += tlb_refill_cycles(cpu, eff, cfg)
    return c


def cycles_to_s(cycles: float, cpu: Cpu) -> float:
    """Seconds that `cycles` take on `cpu` at its base frequency."""
    return cycles / (cpu.frequency_ghz * 1e9)


# --- guest events --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One piece of an event's cost: an exit of `reason` (priced by exit_cost_cycles) or fixed `cycles`.

    `flush` marks steps after which the TLB must be refilled (charged in the exit cost for hw exits;
    kept explicit so the event-by-event stepper can track it)."""

    kind: Literal["exit", "cycles"]
    cycles: float = 0.0
    reason: str | None = None
    user_space: bool | None = None
    emulate: bool = False
    label: str = ""


def _x(reason: str, **kw) -> Step:
    return Step("exit", reason=reason, label=reason, **kw)


def _c(cycles: float, label: str) -> Step:
    return Step("cycles", cycles=float(cycles), label=label)


GUEST_EVENTS = ("cr3_write", "page_fault", "pte_write", "syscall", "timer_irq", "ipi", "device_irq", "halt",
                "cpuid", "msr_access", "io_port", "cr8_write", "pause_spin")


def event_steps(event: str, cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig,
                eff: Effective | None = None) -> list[Step]:
    """The virtualization work one guest event causes, beyond what it costs natively.

    Events: cr3_write (context switch), page_fault, pte_write, syscall, timer_irq (a LAPIC timer interrupt,
    including re-arming the deadline), ipi (one IPI sent and received), device_irq, halt, cpuid, msr_access
    (an MSR outside the pass-through bitmap), io_port (a port access handled in kernel), cr8_write,
    pause_spin (a PAUSE-loop window exhausted).
    """
    if event not in GUEST_EVENTS:
        raise ValueError(f"unknown guest event {event!r} (expected one of: {', '.join(GUEST_EVENTS)})")
    eff = eff or effective(cpu, hv, cfg)
    if eff.mode == "native":
        return []
    k = software_scale(cpu, hv)
    if eff.mode == "pv":
        return _pv_steps(event, hv, k)
    if eff.mode == "bt":
        return _bt_steps(event, hv, k)
    sh = {name: v * k for name, v in (hv.shadow or {}).items()}
    eoi = [] if eff.on("apicv") else [_x("apic_access", emulate=True)]
    posted = eff.on("posted_interrupts") and eff.on("apicv")
    deliver = [] if posted else [_x("external_interrupt")]
    inject = [] if posted else [_c(hv.inject_cycles * k, "inject")]  # the CPU delivers a posted interrupt itself
    if event == "cr3_write":
        return [_x("cr_access"), _c(sh.get("cr3_cycles", 0), "shadow cr3 switch")] if eff.shadow else []
    if event == "page_fault":
        return [_x("exception_nmi"), _c(sh.get("fault_cycles", 0), "shadow fault")] if eff.shadow else []
    if event == "pte_write":
        return [_x("exception_nmi", emulate=True), _c(sh.get("pte_write_cycles", 0), "shadow pte update")] \
            if eff.shadow else []
    if event == "syscall":
        return []
    if event == "timer_irq":
        fire = [_x("preemption_timer")] if eff.on("preemption_timer") else \
            [_x("external_interrupt"), _c(hv.hrtimer_callback_cycles * k, "hrtimer callback")]
        return [_x("msr_write"), _c(hv.timer_arm_cycles * k, "arm timer")] + fire + inject + eoi
    if event == "ipi":
        return [_x("msr_write")] + deliver + inject + eoi
    if event == "device_irq":
        return deliver + inject + eoi
    if event == "halt":
        return [_x("hlt"), _c(hv.halt_wakeup_cycles * k, "wake-up")]
    if event == "cpuid":
        return [_x("cpuid")]
    if event == "msr_access":
        return [_x("msr_write")]
    if event == "io_port":
        return [_x("io_instruction", user_space=False, emulate=hv.pio_in_emulated)]
    if event == "cr8_write":
        return [] if eff.on("tpr_shadow") else [_x("cr_access")]
    if event == "pause_spin":
        # a vCPU spinning on a lock whose holder was descheduled: PLE cuts the spin at the window and yields;
        # without it the vCPU spins until its own time slice ends
        if eff.on("ple"):
            return [_c(hv.ple_window_cycles, "spin until the PLE window"), _x("pause")]
        return [_c(hv.lock_holder_wait_cycles, "spin until descheduled")]
    raise AssertionError(event)


def _bt_steps(event: str, hv: Hypervisor, k: float) -> list[Step]:
    bt = {name: v * k for name, v in (hv.bt or {}).items()}
    call = bt.get("callout_cycles", 0)
    table = {
        "cr3_write": [_c(call, "callout"), _c((hv.shadow or {}).get("cr3_cycles", 0) * k, "shadow cr3 switch")],
        "page_fault": [_c(bt.get("fault_cycles", 0), "hidden fault + reflect")],
        "pte_write": [_c(bt.get("pte_write_cycles", 0), "translated pte write")],
        "syscall": [_c(bt.get("syscall_cycles", 0), "syscall through the monitor")],
        "timer_irq": [_c(bt.get("fault_cycles", 0), "interrupt reflected"), _c(hv.inject_cycles * k, "inject")],
        "ipi": [_c(call, "callout"), _c(bt.get("fault_cycles", 0), "interrupt reflected")],
        "device_irq": [_c(bt.get("fault_cycles", 0), "interrupt reflected"), _c(hv.inject_cycles * k, "inject")],
        "halt": [_c(call, "callout"), _c(hv.halt_wakeup_cycles * k, "wake-up")],
        "cpuid": [_c(call, "callout")],
        "msr_access": [_c(call, "callout")],
        "io_port": [_c(bt.get("io_cycles", 0), "emulated port access")],
        "cr8_write": [_c(bt.get("cr8_cycles", 0), "translated cr8 write")],
        "pause_spin": [_c(hv.lock_holder_wait_cycles, "spin until descheduled")],
    }
    return [s for s in table[event] if s.cycles]


def _pv_steps(event: str, hv: Hypervisor, k: float) -> list[Step]:
    pv = {name: v * k for name, v in (hv.pv or {}).items()}
    hc = pv.get("hypercall_cycles", 0)
    table = {
        "cr3_write": [_c(pv.get("cr3_switch_cycles", 0), "new_baseptr hypercall")],
        "page_fault": [_c(pv.get("fault_bounce_cycles", 0), "fault bounced through Xen")],
        "pte_write": [_c(pv.get("pte_update_cycles", 0), "mmu_update hypercall")],
        "syscall": [_c(pv.get("syscall_bounce_cycles", 0), "syscall bounced through Xen")],
        "timer_irq": [_c(hc, "set_timer_op"), _c(hc, "event-channel upcall")],
        "ipi": [_c(hc, "event-channel send"), _c(hc, "event-channel upcall")],
        "device_irq": [_c(hc, "event-channel upcall")],
        "halt": [_c(hc, "sched_op block"), _c(hv.halt_wakeup_cycles * k, "wake-up")],
        "cpuid": [_c(pv.get("trap_emulate_cycles", 0), "trapped and emulated")],
        "msr_access": [_c(pv.get("trap_emulate_cycles", 0), "trapped and emulated")],
        "io_port": [_c(pv.get("trap_emulate_cycles", 0), "trapped and emulated")],
        "cr8_write": [_c(hc, "hypercall")],
        "pause_spin": [_c(hv.lock_holder_wait_cycles, "spin until descheduled")],
    }
    return [s for s in table[event] if s.cycles]


def step_cycles(step: Step, cpu: Cpu, hv: Hypervisor, cfg: VirtConfig, eff: Effective) -> float:
    """Cycles of one step."""
    if step.kind == "cycles":
        return step.cycles
    return exit_cost_cycles(step.reason, cpu, hv, cfg, user_space=step.user_space, emulate=step.emulate, eff=eff)


def exit_runs(steps: list[Step]) -> int:
    """Maximal runs of back-to-back exits in `steps`. Without VPID/ASID each run flushes the TLB once; the
    guest work after it pays one refill (what the event-by-event stepper does as state)."""
    runs, prev = 0, False
    for s in steps:
        is_exit = s.kind == "exit"
        runs += is_exit and not prev
        prev = is_exit
    return runs


@dataclass(frozen=True)
class EventCost:
    """Virtualization cost of one guest event.

    cycles: all of it, TLB refills included; refill_cycles: the part spent refilling a flushed TLB;
    flushes: full TLB flushes it causes; exits: exits by reason."""

    cycles: float
    exits: dict[str, float]
    flushes: float = 0.0
    refill_cycles: float = 0.0


def steps_cost(steps: list[Step], cpu: Cpu, hv: Hypervisor, cfg: VirtConfig, eff: Effective) -> EventCost:
    """Closed-form cost of a step list: step costs with one TLB refill per run of back-to-back exits."""
    exits: dict[str, float] = {}
    for s in steps:
        if s.kind == "exit":
            exits[s.reason] = exits.get(s.reason, 0.0) + 1.0
    total = sum(step_cycles(s, cpu, hv, cfg, eff) for s in steps)
    if not flushes_on_transition(eff) or not exits:
        return EventCost(cycles=total, exits=exits)
    refill = tlb_refill_cycles(cpu, eff, cfg)
    runs = exit_runs(steps)
    total -= refill * (sum(exits.values()) - runs)  # exit costs each carried a refill; keep one per run
    return EventCost(cycles=total, exits=exits, flushes=float(runs), refill_cycles=refill * runs)


def event_costs(cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig) -> dict[str, EventCost]:
    """Cost of every guest event (GUEST_EVENTS) for one CPU, hypervisor and configuration."""
    eff = effective(cpu, hv, cfg)
    return {ev: steps_cost(event_steps(ev, cpu, hv, cfg, eff), cpu, hv, cfg, eff) for ev in GUEST_EVENTS}


# --- I/O paths -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IoCost:
    """Cost of one packet (or disk I/O) on an I/O path.

    guest_cycles: on the VM's vCPU (driver plus exits and interrupt delivery); backend_cycles: on host threads;
    exits: exits per packet by reason; cap_pps: the path's throughput limit in packets (or I/Os) per second.
    """

    guest_cycles: float
    backend_cycles: float
    exits: dict[str, float]
    cap_pps: float
    flushes: float = 0.0  # full TLB flushes per packet (exits without VPID/ASID)
    refill_cycles: float = 0.0  # the part of guest_cycles spent refilling the TLB
    exit_cycles: float = 0.0  # the part of guest_cycles spent in exits and interrupt delivery

ETHERNET_OVERHEAD_BYTES = 38  # preamble, start delimiter, header, FCS and inter-frame gap around a payload


def io_cost(path: IoPath, cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig, *, line_rate_bps: float = 10e9,
            packet_bytes: int = 1500) -> IoCost:
    """Per-packet cost and throughput cap of an I/O path (see devices.yaml for the per-path figures).

    Exits per packet = exits per batch / batch, each priced by the exit model (so user-space exits pay the
    user-space round trip); interrupts cost delivery exits unless posted interrupts and APICv remove them.
    The cap is the slower of the backend thread (its cycles per packet against one core's clock) and the
    wire (line rate, less the DMA time IOMMU walks add on IOTLB misses).
    """
    eff = effective(cpu, hv, cfg)
    exits: dict[str, float] = {}
    kio = io_scale(cpu)
    driver = path.guest_cycles_per_packet * kio
    guest = driver
    backend = path.backend_cycles_per_packet * kio
    flushes = 0.0
    hz = cpu.frequency_ghz * 1e9
    if eff.mode == "hw":
        for reason, n in path.exits_per_batch.items():
            per = n / path.batch
            exits[reason] = exits.get(reason, 0.0) + per
            # MMIO exits to a user-space model need the access decoded; KVM runs that model on the vCPU's
            # own thread, so the whole exit is guest-side time
            guest += per * exit_cost_cycles(reason, cpu, hv, cfg, user_space=path.user_space,
                                            emulate=path.user_space, eff=eff)
            flushes += per
        irq = steps_cost(event_steps("device_irq", cpu, hv, cfg, eff), cpu, hv, cfg, eff)
        for r, n in irq.exits.items():
            exits[r] = exits.get(r, 0.0) + n * path.interrupts_per_packet
        guest += path.interrupts_per_packet * irq.cycles
        flushes += path.interrupts_per_packet * irq.flushes
    elif eff.mode in ("bt", "pv"):
        for s in event_steps("io_port", cpu, hv, cfg, eff):
            guest += sum(path.exits_per_batch.values()) / path.batch * s.cycles
        for s in event_steps("device_irq", cpu, hv, cfg, eff):
            guest += path.interrupts_per_packet * s.cycles
    wire_pps = line_rate_bps / ((packet_bytes + ETHERNET_OVERHEAD_BYTES) * 8)
    if path.iotlb_miss_rate:
        wire_pps = 1.0 / (1.0 / wire_pps + path.iotlb_miss_rate * path.iotlb_miss_ns * 1e-9)
    if path.device_max_iops:
        wire_pps = path.device_max_iops
    cap = min(wire_pps, hz / backend) if backend > 0 else wire_pps
    if not flushes_on_transition(eff):
        flushes = 0.0
    return IoCost(guest_cycles=guest, backend_cycles=backend, exits=exits, cap_pps=cap, flushes=flushes,
                  refill_cycles=flushes * tlb_refill_cycles(cpu, eff, cfg) if flushes else 0.0,
                  exit_cycles=guest - driver)

