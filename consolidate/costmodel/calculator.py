"""The what-if calculator without a datacenter run: how much slower one busy vCPU of a workload profile runs
under a CPU, hypervisor and configuration than natively, and which cost terms make up the difference.

It prices the same tables the engine uses (tables.build_tables, interval.interval_overhead) for one VM at full
utilisation, so a row here is what every interval of a run charges that VM per vCPU-second of guest work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.costmodel.config import resolve_specs
from consolidate.costmodel.interval import interval_overhead
from consolidate.costmodel.tables import PRICED_COLUMNS, TLB_COLUMN, build_tables
from consolidate.hardware import catalog as cat
from consolidate.hardware import coremodel as cm
from consolidate.hardware.assignment import IO_CLASSES
from consolidate.scenario.model import HostType, VirtSpec
from consolidate.workload.profiles import EVENT_COLUMNS, IO_COLUMNS, event_rates, io_rates, profile_table

# guest events whose cost under shadow paging is the MMU's (CR3 writes, faults, PTE writes with INVLPG)
MMU_COLUMNS = ("ctx_switches_per_s", "page_faults_per_s", "pte_writes_per_s")
TERMS = ("mmu", "exits", "tlb_refill", "page_walk", "io")
COLUMNS = ("profile", "mode", "paging", "guest_page", "host_page", "slowdown", "gain_vs_shadow",
           *(f"share_{t}" for t in TERMS), "backend_per_native", "shadow_memory_mib", "cpu", "hypervisor")


@dataclass(frozen=True)
class Row:
    """One configuration: slowdown = virtualized time on the vCPU over native time for the same work; the
    terms (cycles per second of native work) add up to slowdown - 1 times the clock; backend: host-thread
    cycles for the VM's I/O per native cycle (not on the vCPU)."""

    profile: str
    mode: str
    paging: str
    guest_page: str
    host_page: str
    slowdown: float
    terms_cycles: dict[str, float]
    backend_per_native: float
    shadow_memory_mib: float
    cpu: str
    hypervisor: str

    def shares(self) -> dict[str, float]:
        total = sum(self.terms_cycles.values())
        return {t: (v / total if total > 0 else 0.0) for t, v in self.terms_cycles.items()}


def paging_modes(cpu: cat.Cpu, hv: cat.Hypervisor, mode: str) -> list[str]:
    """Paging modes `cpu` and `hv` support in `mode`: shadow for hw and bt, plus nested (ept or npt) where both
    have it; 'direct' for a paravirtual guest (its own page tables, validated by the hypervisor)."""
    if mode == "pv":
        return ["direct"]
    if mode == "bt":
        return ["shadow"]
    nested = ["npt" if cpu.vendor == "amd" else "ept"] if cpu.has("ept") and hv.uses.get("ept", False) else []
    return ["shadow", *nested]


def price(cpu: str, hypervisor: str, profile: str, *, mode: str | None = None, paging: str | None = None,
          guest_page: str | None = None, host_page: str = "4k", nested_tlb: bool | None = None,
          clock_ghz: float | None = None, features: dict[str, bool] | None = None) -> Row:
    """One configuration of the calculator (see Row). `paging` 'direct' (or None) in pv mode; raises
    coremodel.ConfigError for what the CPU or hypervisor cannot do."""
    hv = cat.hypervisors()[hypervisor]
    mode = mode or hv.modes[0]
    c = cat.cpus()[cpu]
    ghz = clock_ghz or c.frequency_ghz
    host = HostType(name="calculator", cores=1, mips_per_core=ghz * 1000, memory_mb=1024, power_idle_w=0,
                    power_max_w=0, cpu=cpu, clock_ghz=clock_ghz)
    spec = VirtSpec(hypervisor=hypervisor, mode=mode, paging=None if paging in (None, "direct") else paging,
                    host_page=host_page, guest_page=guest_page, nested_tlb=nested_tlb, features=features or {})
    r = resolve_specs(host, spec, profile)
    t = build_tables([r])
    p = np.array([profile_table().index(profile)])
    u = np.ones(1)
    rates = event_rates(p, u)
    ev = rates[:, [EVENT_COLUMNS.index(col) for col in PRICED_COLUMNS]]
    tlb = rates[:, EVENT_COLUMNS.index(TLB_COLUMN)]
    io = io_rates(p, u, np.ones(1))
    io_ops = [sum(io[:, IO_COLUMNS.index(col)] for col in k.trace_columns) for k in IO_CLASSES]
    per_event = ev[0] * t.ev_cycles[0]
    refill = ev[0] * t.ev_refill[0]
    mmu = sum(per_event[i] - refill[i] for i, col in enumerate(PRICED_COLUMNS) if col in MMU_COLUMNS)
    exits = sum(per_event[i] - refill[i] for i, col in enumerate(PRICED_COLUMNS) if col not in MMU_COLUMNS)
    cfg = np.zeros(1, dtype=np.int64)
    io_ov = interval_overhead(t, cfg, np.ones(1), np.zeros_like(ev), np.zeros(1), io_ops, np.zeros(1))
    to_cycles = 1.0 / t.cycles_to_mips[0]
    terms = {"mmu": float(mmu), "exits": float(exits), "tlb_refill": float(refill.sum()),
             "page_walk": float(tlb[0] * t.walk_extra[0]), "io": float(io_ov.overhead_mips[0] * to_cycles)}
    hz = t.hz[0]
    eff = cm.effective(r.cpu, r.hypervisor, r.config)
    label = "direct" if eff.mode == "pv" else ("shadow" if eff.shadow else ("npt" if c.vendor == "amd" else "ept"))
    return Row(profile=profile, mode=eff.mode, paging=label, guest_page=r.config.guest_page,
               host_page=r.config.host_page, slowdown=1.0 + sum(terms.values()) / hz, terms_cycles=terms,
               backend_per_native=float(io_ov.backend_mips[0] * to_cycles / hz),
               shadow_memory_mib=cm.shadow_memory_mib(r.hypervisor, eff, r.config), cpu=cpu, hypervisor=hypervisor)


def table(cpus: list[str], hypervisor: str, profiles: list[str], *, mode: str | None = None,
          paging: str | None = None, guest_page: str | None = None, host_page: str = "4k",
          nested_tlb: bool | None = None, clock_ghz: float | None = None) -> list[dict]:
    """Rows (dicts in COLUMNS order) for every CPU x profile x paging mode (every mode the CPU supports when
    `paging` is None). gain_vs_shadow: shadow paging's slowdown over this row's, less 1 (0 on the shadow row)."""
    hv = cat.hypervisors()[hypervisor]
    mode = mode or hv.modes[0]
    out = []
    for cpu in cpus:
        modes = [paging] if paging else paging_modes(cat.cpus()[cpu], hv, mode)
        for prof in profiles:
            rows = [price(cpu, hypervisor, prof, mode=mode, paging=pg, guest_page=guest_page, host_page=host_page,
                          nested_tlb=nested_tlb, clock_ghz=clock_ghz) for pg in modes]
            shadow = next((r.slowdown for r in rows if r.paging == "shadow"), None)
            if shadow is None and mode == "hw" and paging:
                shadow = price(cpu, hypervisor, prof, mode=mode, paging="shadow", guest_page=guest_page,
                               host_page=host_page, nested_tlb=nested_tlb, clock_ghz=clock_ghz).slowdown
            for r in rows:
                shares = r.shares()
                out.append({"profile": r.profile, "mode": r.mode, "paging": r.paging, "guest_page": r.guest_page,
                            "host_page": r.host_page, "slowdown": r.slowdown,
                            "gain_vs_shadow": (shadow / r.slowdown - 1.0) if shadow else float("nan"),
                            **{f"share_{k}": v for k, v in shares.items()},
                            "backend_per_native": r.backend_per_native, "shadow_memory_mib": r.shadow_memory_mib,
                            "cpu": r.cpu, "hypervisor": r.hypervisor})
    return out
