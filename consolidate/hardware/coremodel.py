"""The micro-architectural core model: what one virtualization event costs, in cycles, on a given CPU
under a given hypervisor and configuration. Pure functions of catalog entries; no SimPy, no state.

Equations (docs/core-model.md gives their derivation and inputs):

    exit cost   c_exit(r) = roundtrip(cpu) + overhead(hv) + handler(hv, r) [+ emulate] [+ user exit]
                            [+ type-2 host switch] [+ TLB refill, when the TLB is not tagged]
    TLB refill  refill    = min(TLB entries, refill pages) x walk_cycles      (refill pages: REFILL_PAGES)
    TLB reach   misses    = m_ref x ((R_ref / R)^a - (R_ref / W)^a)+, R the reach at the TLB's page size
    page walk   guest refs g = 1 + sum over upper levels of (1 - hit); nested refs = g + g n_table + n_data,
                with the host (nested) dimension's walks after its own page-walk-cache / nested-TLB hits
                (no hits: (L_g + 1)(L_h + 1) - 1 = 24 for 4-level on 4-level)
    walk cycles refs x (sum over cache levels of share x latency)
    shadow      CR3 write: exit + root switch + shadow-cache misses x rebuild faults; PTE write: trapped and
                emulated, or (fork/exec/exit bulk writes) batched on unsync pages and resynced; INVLPG exits

Cycle costs hardly depend on the clock, except memory latency (fixed in ns): `at_clock` moves a catalog
CPU to a host's own clock; `cycles_to_s` turns cycles into time.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from consolidate.hardware.catalog import Cpu, Hypervisor, IoPath, cpus, exit_reasons

Mode = Literal["hw", "bt", "pv", "native"]
Paging = Literal["ept", "npt", "shadow", "native"]
FEATURES = ("vpid", "ept", "apicv", "posted_interrupts", "tpr_shadow", "vmcs_shadowing", "ple", "preemption_timer")
# Enlightenments: what a hypervisor offers an enlightened guest (Hyper-V's TLFS), not the CPU: in force when the
# hypervisor offers it (`uses`) in hw mode, whatever the CPU.
ENLIGHTENMENTS = ("hv_remote_tlb_flush", "hv_synthetic_timers")
# names of the features on AMD-V, for messages
AMD_NAMES = {"vpid": "asid", "ept": "npt", "apicv": "avic", "posted_interrupts": "avic"}


# Pages a guest re-touches after a full TLB flush before the next transition: the one default of the whole
# package (micro-benchmarks, calibration, the API and the engine). Calibrated with the Adams & Agesen Pentium 4
# figures (aa2006_*_hw fit with it); a nanobenchmark loop touches code, stack, data, IDT and GDT pages.
REFILL_PAGES = 8
PAGE_BYTES = {"4k": 4096, "2m": 2 << 20, "1g": 1 << 30}
MIB = 1 << 20
# TLB misses scale with reach as R^-TLB_REACH_EXPONENT below the working set: the square-root rule of miss
# rate against capacity (Hartstein et al., "Cache miss behavior: is it sqrt(2)?", 2006), taken for TLBs.
TLB_REACH_EXPONENT = 0.5
# Intel's PDE cache and AMD's page-walk cache hold about 32 entries of the level above the leaf table, each
# covering 2 MiB with 4 KB pages: beyond 64 MiB of working set that level's hit rate falls as reach / W.
PDE_CACHE_REACH_MIB = 64.0
# A nested TLB (Bhargava et al. ASPLOS 2008) caches guest-physical to host-physical translations of the guest's
# page-table pages, which are few and hot: most host walks of the guest dimension are skipped.
NESTED_TLB_HIT = 0.9
# Shadow entries KVM fills per hidden fault (PTE_PREFETCH_NUM in mmu.c) and the distinct pages a process touches
# in one scheduling slice after its shadow root missed the cache, so refaults (about an STLB's worth: derived).
SHADOW_PREFETCH = 8
REBUILD_PAGES_MAX = 256
PTES_PER_TABLE = 512
# With "use TPR shadow" (VT-x) or the VMCB's virtual TPR (AMD-V) a guest CR8 write exits only when it lowers the
# TPR below a pending interrupt's priority (VT-x exit "TPR below threshold"). Xen's AMD-V change to intercept CR8
# writes only while an interrupt is pending took a Windows Server 2003 boot from about 10,000,000 CR8 intercepts to
# about 6,000 (Xen commit "svm: Greatly reduce total number of CR8 intercepts"): 6e-4 of the writes still exit.
TPR_THRESHOLD_EXIT_SHARE = 6e-4
# IPIs that are TLB shootdowns, which Hyper-V's remote-flush hypercall replaces (the rest wake or call functions
# on other vCPUs). Derived, not measured: Linux sends reschedule, call-function and TLB-shootdown IPIs, taken as
# half shootdowns; one target each (the shipped VM types have 2 vCPUs).
SHOOTDOWN_IPI_SHARE = 0.5


class ConfigError(ValueError):
    """A configuration asks for something the CPU or hypervisor cannot do."""


@dataclass(frozen=True)
class VirtConfig:
    """How a VM is virtualized.

    mode: `hw` (VT-x/AMD-V), `bt` (binary translation), `pv` (paravirtual guest) or `native` (no VMM).
    paging: `ept`/`npt` (nested paging), `shadow`, or None for the best the CPU and hypervisor offer.
    Feature switches left as None mean "use it if the CPU has it and the hypervisor uses it"; False turns a
    feature off; True demands it (a ConfigError if the CPU lacks it). hv_remote_tlb_flush, hv_synthetic_timers:
    Hyper-V enlightenments (ENLIGHTENMENTS), the same switches against what the hypervisor offers.
    guest_levels, host_levels: paging levels (4, or 5 with LA57); host_page: page size backing guest memory;
    guest_page: the guest's own page size for its working set.
    working_set_pages: pages the guest re-touches after a TLB flush (REFILL_PAGES, the one default).
    timer_fastpath: inject an already-expired TSC deadline on the same VM entry instead of arming the
    preemption timer with zero and taking one more exit (KVM since kvm-unit-tests commit cfbd129c).
    The guest's MMU character (a workload profile's `mmu` block): working_set_mib, the memory it touches in
    steady state (TLB reach, page-walk-cache coverage); address_spaces, processes that take turns on a vCPU
    (shadow page-table cache); bulk_pte_share, the share of PTE writes made in bulk by fork, exec and exit;
    invlpg_share, PTE writes followed by an INVLPG; shared_share, the share of the working set every address
    space maps (a shared buffer pool: each process has its own page tables, so its own shadows, for it).
    nested_tlb: a nested TLB / 2D page-walk cache.
    eli: exitless interrupts (ELI, Gordon et al. ASPLOS 2012), a software technique of the hypervisor, off unless
    asked for: a directly assigned device's interrupts reach the guest through a shadow IDT and are completed by
    its own x2APIC EOI write, with no exit (hw mode only; posted interrupts make it moot where in force).
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
    hv_remote_tlb_flush: bool | None = None
    hv_synthetic_timers: bool | None = None
    guest_levels: int = 4
    host_levels: int = 4
    host_page: Literal["4k", "2m", "1g"] = "4k"
    guest_page: Literal["4k", "2m"] = "4k"
    working_set_pages: int = REFILL_PAGES
    timer_fastpath: bool = True
    working_set_mib: float = 64.0
    address_spaces: float = 1.0
    bulk_pte_share: float = 0.0
    invlpg_share: float = 0.0
    shared_share: float = 0.0
    nested_tlb: bool = False
    eli: bool = False


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
        return Effective(mode="native", nested=False, shadow=False,
                         features={f: False for f in FEATURES + ENLIGHTENMENTS})
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
    for f in ENLIGHTENMENTS:
        want, have = getattr(cfg, f), hv.uses.get(f, False) and cfg.mode == "hw"
        if want is True and not hv.uses.get(f, False):
            raise ConfigError(f"{f} requested but hypervisor {hv.name} does not offer it (expected a hypervisor "
                              f"whose catalog entry uses it, e.g. hyperv)")
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
    feats["eli"] = bool(cfg.eli) and cfg.mode == "hw"
    shadow = cfg.mode in ("hw", "bt") and not nested
    return Effective(mode=cfg.mode, nested=nested, shadow=shadow, features=feats)


# --- clock ---------------------------------------------------------------------------------------------------

def at_clock(cpu: Cpu, clock_ghz: float | None) -> Cpu:
    """`cpu` run at `clock_ghz` (a host's own SKU of the microarchitecture): the same core, so the same cycles
    for everything on the core, but DRAM latency is fixed in nanoseconds, so a memory reference takes
    proportionally more cycles at a higher clock. None or the catalog clock: `cpu` unchanged."""
    if clock_ghz is None or clock_ghz == cpu.frequency_ghz:
        return cpu
    walk = dict(cpu.walk, mem_cycles=cpu.walk["mem_cycles"] * clock_ghz / cpu.frequency_ghz)
    return replace(cpu, frequency_ghz=float(clock_ghz), walk=walk)


# --- page walks and TLB ------------------------------------------------------------------------------------

def walk_references(guest_levels: int = 4, host_levels: int | None = None, pwc_hit: float = 0.0) -> float:
    """Memory references of one page walk with one page-walk-cache hit rate on every upper level.

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


def levels_for(page: str, levels: int = 4) -> int:
    """Walk levels when the leaf maps `page` pages: a 2 MB page ends the walk one level early, 1 GB two."""
    return levels - {"4k": 0, "2m": 1, "1g": 2}[page]


host_levels_for = levels_for


def _dimension_refs(levels: int, page: str, hit: float, working_set_mib: float) -> float:
    """References of one walk in one dimension (guest or host): the leaf, plus each upper level the
    page-walk cache misses. The level just above a 4 KB leaf is cached per 2 MiB region, so its hit rate
    falls once the working set outgrows the cache's reach (the walk grows costlier as misses grow)."""
    upper = levels - 1
    if upper <= 0:
        return 1.0
    if page == "4k":
        cover = min(1.0, PDE_CACHE_REACH_MIB / max(working_set_mib, 1e-9))
        return 1.0 + (upper - 1) * (1 - hit) + (1 - hit * cover)
    return 1.0 + upper * (1 - hit)


def tlb_page(eff: Effective, cfg: VirtConfig) -> str:
    """Page size of the translations the TLB holds: the guest's own natively; under shadow or nested paging
    the smaller of the guest's and the host's page (a 2 MB guest page on 4 KB host pages is splintered)."""
    if eff.mode == "native" or eff.mode == "pv":
        return cfg.guest_page
    return min(cfg.guest_page, cfg.host_page, key=PAGE_BYTES.__getitem__)


def tlb_reach_bytes(cpu: Cpu, page: str) -> float:
    """Bytes the data TLBs (L1 and STLB) map with `page` pages. A CPU without large-page STLB entries
    relies on its L1 entries for them."""
    t = cpu.tlb
    entries = t.get(f"l1d_{page}", 0) + t.get(f"stlb_{page}", 0)
    if entries == 0:  # no entries of that size (1 GB on old parts): translations splinter to the next size down
        return tlb_reach_bytes(cpu, "2m" if page == "1g" else "4k")
    return entries * PAGE_BYTES[page]


def tlb_miss_factor(cpu: Cpu, page: str, working_set_mib: float | None) -> float:
    """TLB misses on `cpu` with `page` translations, per miss a workload takes on the reference TLB (Haswell,
    4 KB pages) with an unbounded working set: ((R_ref/R)^a - (R_ref/W)^a)+. It never falls as the working
    set W grows, falls as reach R grows, and is zero once the TLB maps the whole working set. None = unbounded
    (a measured trace column)."""
    ref = tlb_reach_bytes(cpus()[TLB_REFERENCE_CPU], "4k")
    a = TLB_REACH_EXPONENT
    r = tlb_reach_bytes(cpu, page)
    w = (ref / (working_set_mib * MIB)) ** a if working_set_mib else 0.0
    return max(0.0, (ref / r) ** a - w)


def guest_walk_refs(cpu: Cpu, cfg: VirtConfig, page: str | None = None) -> float:
    """References of the guest dimension (a native walk) for leaf pages `page` (default the guest's)."""
    page = page or cfg.guest_page
    return _dimension_refs(levels_for(page, cfg.guest_levels), page, cpu.walk["pwc_hit"], cfg.working_set_mib)


def nested_walk_refs(cpu: Cpu, cfg: VirtConfig) -> float:
    """References of a 2D walk: g guest references, each guest table address translated by a host walk
    (page tables are compact, so the host's upper levels hit as the cache allows; a nested TLB skips most of
    these walks) and the final data address by a host walk over the whole working set."""
    h = cpu.walk["pwc_hit"]
    g = guest_walk_refs(cpu, cfg)
    host_lv = levels_for(cfg.host_page, cfg.host_levels)
    n_table = _dimension_refs(host_lv, cfg.host_page, h, 0.0) * (1 - (NESTED_TLB_HIT if cfg.nested_tlb else 0.0))
    n_data = _dimension_refs(host_lv, cfg.host_page, h, cfg.working_set_mib)
    return g + g * n_table + n_data


def reference_cycles(cpu: Cpu) -> float:
    """Mean latency of one page-table reference, from where page-table entries are found (cycles)."""
    w = cpu.walk
    return (w["pte_l1"] * w["l1_cycles"] + w["pte_l2"] * w["l2_cycles"] + w["pte_llc"] * w["llc_cycles"]
            + w["pte_mem"] * w["mem_cycles"])


def walk_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Cycles of one TLB-miss page walk under the effective paging: nested (2D), or a one-dimensional walk of
    the guest's tables (native) or of the shadow tables (whose leaves are the TLB's page size)."""
    if eff.nested:
        return nested_walk_refs(cpu, cfg) * reference_cycles(cpu)
    return guest_walk_refs(cpu, cfg, tlb_page(eff, cfg)) * reference_cycles(cpu)


def native_walk_cycles(cpu: Cpu, cfg: VirtConfig) -> float:
    """Cycles of one native page walk of the guest's working set at its own page size."""
    return guest_walk_refs(cpu, cfg) * reference_cycles(cpu)


def extra_walk_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Extra cycles of one TLB miss against native, per miss on the reference TLB (TLB_REFERENCE_CPU, 4 KB
    pages, unbounded working set): the virtualized TLB's misses times its walk, less the native TLB's misses
    times a native walk. Nested walks are longer; splintered large pages miss more; shadow walks are native."""
    if eff.mode == "native":
        return 0.0
    virt = tlb_miss_factor(cpu, tlb_page(eff, cfg), cfg.working_set_mib) * walk_cycles(cpu, eff, cfg)
    native = tlb_miss_factor(cpu, cfg.guest_page, cfg.working_set_mib) * native_walk_cycles(cpu, cfg)
    return max(0.0, virt - native)


def tlb_entries(cpu: Cpu) -> int:
    """4 KB translations the TLB hierarchy holds (L1 DTLB + STLB)."""
    return int(cpu.tlb["l1d_4k"] + cpu.tlb["stlb_4k"])


TLB_REFERENCE_CPU = "intel-haswell"  # trace and profile TLB-miss rates are for this CPU's TLB


def tlb_miss_scale(cpu: Cpu) -> float:
    """Factor on a TLB-miss rate measured on the reference TLB (Haswell, 4 KB pages) for `cpu`'s 4 KB TLB,
    with an unbounded working set."""
    return tlb_miss_factor(cpu, "4k", None)


def tlb_refill_cycles(cpu: Cpu, eff: Effective, cfg: VirtConfig) -> float:
    """Cycles to refill the TLB after a full flush: min(entries, refill pages) walks."""
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
    times: float = 1.0  # an exit taken this many times per event on average, each after guest work (own run)


def _x(reason: str, **kw) -> Step:
    return Step("exit", reason=reason, label=reason, **kw)


def _keep(steps: list[Step]) -> list[Step]:
    """Drop steps that never happen (weight or cycles zero)."""
    return [s for s in steps if s.times > 0 and (s.kind == "exit" or s.cycles)]


def shadow_cache_miss(hv: Hypervisor, cfg: VirtConfig) -> float:
    """Probability that a guest CR3 write finds no cached shadow root: the shadow pages the guest's address
    spaces need (their leaf tables over each one's share of the working set, plus the upper levels) against
    the hypervisor's shadow page cache."""
    cache = (hv.shadow or {}).get("cache_pages", 0)
    if not cache:
        return 0.0
    need = max(cfg.address_spaces, 1.0) * (space_mib(cfg) / 2.0 + 3)  # a leaf table maps 2 MiB
    return max(0.0, 1.0 - cache / need)


def space_mib(cfg: VirtConfig) -> float:
    """MiB one address space maps: the shared part of the working set plus its share of the private rest."""
    spaces = max(cfg.address_spaces, 1.0)
    return cfg.working_set_mib * (cfg.shared_share + (1.0 - cfg.shared_share) / spaces)


def rebuild_faults(cfg: VirtConfig) -> float:
    """Hidden faults that rebuild a missed shadow root: the pages the process touches in its quantum (its share
    of the working set, at most REBUILD_PAGES_MAX), SHADOW_PREFETCH entries filled per fault."""
    pages = space_mib(cfg) * MIB / PAGE_BYTES["4k"]
    return min(pages, REBUILD_PAGES_MAX) / SHADOW_PREFETCH


def shadow_memory_mib(hv: Hypervisor | None, eff: Effective, cfg: VirtConfig) -> float:
    """Memory the shadow page tables hold for one VM (MiB): a 4 KiB table page per 2 MiB of each cached
    address space's working set plus its upper levels, bounded by the hypervisor's shadow page cache."""
    if not eff.shadow or hv is None:
        return 0.0
    pages = max(cfg.address_spaces, 1.0) * (space_mib(cfg) / 2.0 + 3)
    cache = (hv.shadow or {}).get("cache_pages", 0)
    return (min(pages, cache) if cache else pages) * PAGE_BYTES["4k"] / MIB


def _shadow_steps(event: str, hv: Hypervisor, cfg: VirtConfig, k: float) -> list[Step]:
    """What shadow paging adds to a CR3 write, a guest page fault or a guest PTE write under VT-x/AMD-V."""
    sh = hv.shadow or {}
    cyc = {name: v * k for name, v in sh.items() if name.endswith("_cycles")}
    fault = cyc.get("fault_cycles", 0)
    if event == "cr3_write":
        miss = shadow_cache_miss(hv, cfg) * rebuild_faults(cfg)
        # (the resync of unsync tables at this switch is charged on the PTE writes that caused it)
        return _keep([_x("cr_access"), _c(cyc.get("cr3_cycles", 0), "shadow cr3 switch"),
                      _x("exception_nmi", times=miss), _c(miss * fault, "rebuild shadow root")])
    if event == "page_fault":
        return [_x("exception_nmi"), _c(fault, "shadow fault")]
    # pte_write: isolated writes trap and are emulated; fork/exec/exit writes in bulk go to unsync shadow
    # pages (KVM) where the hypervisor batches them: one write-protect fault per table, a resync per entry
    bulk = cfg.bulk_pte_share
    trap = [_x("exception_nmi", emulate=True, times=1 - bulk), _c(cyc.get("pte_write_cycles", 0) * (1 - bulk),
                                                                   "shadow pte update")]
    if sh.get("unsync"):
        batched = [_x("exception_nmi", times=bulk / PTES_PER_TABLE),
                   _c(bulk * cyc.get("sync_pte_cycles", 0), "unsync: resync entry")]
    else:
        batched = [_x("exception_nmi", emulate=True, times=bulk),
                   _c(bulk * cyc.get("pte_write_cycles", 0), "shadow pte update (bulk)")]
    inv = cfg.invlpg_share
    invlpg = [_x("invlpg_invpcid", times=inv), _c(inv * cyc.get("invlpg_cycles", 0), "invlpg: sync entry")]
    return _keep(trap + batched + invlpg)


def _c(cycles: float, label: str) -> Step:
    return Step("cycles", cycles=float(cycles), label=label)


GUEST_EVENTS = ("cr3_write", "page_fault", "pte_write", "syscall", "timer_irq", "ipi", "device_irq", "halt",
                "cpuid", "msr_access", "io_port", "io_port_user", "cr8_write", "pause_spin")


def event_steps(event: str, cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig,
                eff: Effective | None = None) -> list[Step]:
    """The virtualization work one guest event causes, beyond what it costs natively.

    Events: cr3_write (context switch), page_fault, pte_write, syscall, timer_irq (a LAPIC timer interrupt,
    including re-arming the deadline), ipi (one IPI sent and received), device_irq, halt, cpuid, msr_access
    (an MSR outside the pass-through bitmap), io_port (a port access handled in kernel, or in a BT monitor),
    io_port_user (a port access whose device model runs in the host: QEMU, the VMX process, a root partition's
    worker), cr8_write (a TPR write), pause_spin (a PAUSE-loop window exhausted).
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
        return _bt_steps(event, hv, cfg, k)
    eoi = [] if eff.on("apicv") else [_x("apic_access", emulate=True)]
    posted = eff.on("posted_interrupts") and eff.on("apicv")
    # under ELI every physical interrupt that is not the assigned device's meets a non-present shadow-IDT entry:
    # the #NP exception exit's handler comes on top of the host's interrupt handling (ELI's own cost)
    eli_np = [_c(eli_np_cycles(cpu, hv), "ELI #NP exception")] if eli_in_force(eff) else []
    deliver = [] if posted else [_x("external_interrupt")] + eli_np
    inject = [] if posted else [_c(hv.inject_cycles * k, "inject")]  # the CPU delivers a posted interrupt itself
    if event in ("cr3_write", "page_fault", "pte_write"):
        return _shadow_steps(event, hv, cfg, k) if eff.shadow else []
    if event == "syscall":
        return []
    if event == "timer_irq":
        fire = [_x("preemption_timer")] if eff.on("preemption_timer") else \
            [_x("external_interrupt")] + eli_np + [_c(hv.hrtimer_callback_cycles * k, "hrtimer callback")]
        # a synthetic timer (Hyper-V) is armed by a synthetic MSR write and delivered through the SynIC with
        # auto-EOI: no EOI write to the emulated APIC
        eoi_t = [] if eff.on("hv_synthetic_timers") else eoi
        return [_x("msr_write"), _c(hv.timer_arm_cycles * k, "arm timer")] + fire + inject + eoi_t
    if event == "ipi":
        if eff.on("hv_remote_tlb_flush"):
            # a shootdown is one flush hypercall; the hypervisor flushes the target without interrupting it
            s = SHOOTDOWN_IPI_SHARE
            return _keep([_x("msr_write", times=1 - s)] + [replace(x, times=1 - s) for x in deliver + eoi]
                         + [_c(c.cycles * (1 - s), c.label) for c in inject] + [_x("vmcall", times=s)])
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
    if event == "io_port_user":
        return [_x("io_instruction", user_space=True, emulate=hv.pio_in_emulated)]
    if event == "cr8_write":
        # with a TPR shadow the write lands in the virtual-APIC page; it exits only when it unmasks a pending
        # interrupt (below the TPR threshold)
        return [_x("tpr_below_threshold", times=TPR_THRESHOLD_EXIT_SHARE)] if eff.on("tpr_shadow") else [_x("cr_access")]
    if event == "pause_spin":
        # a vCPU spinning on a lock whose holder was descheduled: PLE cuts the spin at the window and yields;
        # without it the vCPU spins until its own time slice ends
        if eff.on("ple"):
            return [_c(hv.ple_window_cycles, "spin until the PLE window"), _x("pause")]
        return [_c(hv.lock_holder_wait_cycles, "spin until descheduled")]
    raise AssertionError(event)


def eli_in_force(eff: Effective) -> bool:
    """ELI delivers the assigned device's interrupts (it is moot where posted interrupts already do)."""
    return eff.on("eli") and not (eff.on("posted_interrupts") and eff.on("apicv"))


def eli_np_cycles(cpu: Cpu, hv: Hypervisor) -> float:
    """ELI's own cost per interrupt that is not the assigned device's: the handler of the #NP exception exit
    (exit_reasons exception_nmi) added to the host's usual handling, software-scaled."""
    return exit_reasons()["exception_nmi"]["handler_cycles"] * hv.handler_scale * software_scale(cpu, hv)


def assigned_irq_cost(cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig, eff: Effective | None = None) -> EventCost:
    """What one interrupt of a directly assigned function (a VF or a whole port, its MSI-X vector) costs the
    guest's vCPU beyond native: with posted interrupts (APICv + posted, VT-d posting) or ELI nothing, the guest
    takes it like bare metal; otherwise an external-interrupt exit, the injection and an EOI exit (device_irq)."""
    eff = eff or effective(cpu, hv, cfg)
    if eff.mode == "native" or eli_in_force(eff) or (eff.on("posted_interrupts") and eff.on("apicv")):
        return EventCost(cycles=0.0, exits={})
    return steps_cost(event_steps("device_irq", cpu, hv, cfg, eff), cpu, hv, cfg, eff)


def posted_wakeup_cycles(cpu: Cpu, hv: Hypervisor | None, cfg: VirtConfig, eff: Effective | None = None) -> float:
    """Host cycles when a posted interrupt finds its vCPU blocked (halted or descheduled): the IOMMU raises the
    wake-up notification vector in the host, whose handler wakes the vCPU (the external_interrupt handler, with no
    VM exit round trip): the cost posted interrupts keep. 0 where posting is not in force."""
    eff = eff or effective(cpu, hv, cfg)
    if eff.mode != "hw" or not (eff.on("posted_interrupts") and eff.on("apicv")):
        return 0.0
    return exit_reasons()["external_interrupt"]["handler_cycles"] * hv.handler_scale * software_scale(cpu, hv)


def host_device_switch_cycles(hv: Hypervisor) -> float:
    """Software cycles for a BT monitor (or a PV guest's hypervisor) to reach a device model that runs in the host
    and come back: the same hand-off a hardware VMM's user-space exit pays, plus the host/VMM world switch of a
    hosted (type-2) VMM. Unscaled (the caller applies software_scale)."""
    return hv.user_exit_cycles + (hv.type2_switch_cycles if hv.type == 2 else 0.0)


def _bt_steps(event: str, hv: Hypervisor, cfg: VirtConfig, k: float) -> list[Step]:
    """What a binary-translating monitor (Adams & Agesen 2006) does for one guest event. Translated code calls
    into the monitor, which runs in the guest's address space: a port of a device it emulates itself, a TPR write,
    a CPUID or an MSR complete there with no world switch; only a device model in the host costs one."""
    bt = {name: v * k for name, v in (hv.bt or {}).items()}
    call = bt.get("callout_cycles", 0)
    sh = {name: v * k for name, v in (hv.shadow or {}).items() if name.endswith("_cycles")}
    # the BT monitor runs in the guest's context: shadow upkeep is in-monitor work, never a world switch
    rebuild = shadow_cache_miss(hv, cfg) * rebuild_faults(cfg) * bt.get("fault_cycles", 0)
    table = {
        "cr3_write": [_c(call, "callout"), _c(sh.get("cr3_cycles", 0), "shadow cr3 switch"),
                      _c(rebuild, "rebuild shadow root")],
        "page_fault": [_c(bt.get("fault_cycles", 0), "hidden fault + reflect")],
        "pte_write": [_c(bt.get("pte_write_cycles", 0), "translated pte write"),
                      _c(cfg.invlpg_share * (call + sh.get("invlpg_cycles", 0)), "invlpg: sync entry")],
        "syscall": [_c(bt.get("syscall_cycles", 0), "syscall through the monitor")],
        "timer_irq": [_c(bt.get("fault_cycles", 0), "interrupt reflected"), _c(hv.inject_cycles * k, "inject")],
        "ipi": [_c(call, "callout"), _c(bt.get("fault_cycles", 0), "interrupt reflected")],
        "device_irq": [_c(bt.get("fault_cycles", 0), "interrupt reflected"), _c(hv.inject_cycles * k, "inject")],
        "halt": [_c(call, "callout"), _c(hv.halt_wakeup_cycles * k, "wake-up")],
        "cpuid": [_c(call, "callout")],
        "msr_access": [_c(call, "callout")],
        "io_port": [_c(call, "callout"), _c(bt.get("monitor_io_cycles", 0), "port emulated in the monitor")],
        "io_port_user": [_c(call, "callout"), _c(host_device_switch_cycles(hv) * k, "world switch to the host's "
                                                 "device model and back")],
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
        "io_port_user": [_c(pv.get("trap_emulate_cycles", 0), "trapped"),
                         _c(host_device_switch_cycles(hv) * k, "to the device model in the host")],
        "cr8_write": [_c(hc, "hypercall")],
        "pause_spin": [_c(hv.lock_holder_wait_cycles, "spin until descheduled")],
    }
    return [s for s in table[event] if s.cycles]


def step_cycles(step: Step, cpu: Cpu, hv: Hypervisor, cfg: VirtConfig, eff: Effective) -> float:
    """Cycles of one step."""
    if step.kind == "cycles":
        return step.cycles
    return exit_cost_cycles(step.reason, cpu, hv, cfg, user_space=step.user_space, emulate=step.emulate, eff=eff)


def exit_runs(steps: list[Step]) -> float:
    """Maximal runs of back-to-back exits in `steps`. Without VPID/ASID each run flushes the TLB once; the
    guest work after it pays one refill (what the event-by-event stepper does as state)."""
    runs, prev = 0.0, False
    for s in steps:
        if s.kind == "exit" and s.times != 1:
            runs += s.times  # each repetition comes after guest work: its own run
            prev = False
            continue
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
            exits[s.reason] = exits.get(s.reason, 0.0) + s.times
    total = sum(step_cycles(s, cpu, hv, cfg, eff) * (s.times if s.kind == "exit" else 1.0) for s in steps)
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
            packet_bytes: int = 1500, interrupts: bool = True) -> IoCost:
    """Per-packet cost and throughput cap of an I/O path (see devices.yaml for the per-path figures).

    Exits per packet = exits per batch / batch, each priced by the exit model (so user-space exits pay the
    user-space round trip); interrupts cost delivery exits unless posted interrupts and APICv remove them.
    The cap is the slower of the backend thread (its cycles per packet against one core's clock) and the
    wire (line rate, less the DMA time IOMMU walks add on IOTLB misses). A path through the IOMMU (a directly
    assigned device) takes its interrupts as assigned_irq_cost prices them (posted, ELI or exits).
    interrupts=False leaves interrupts out (the caller prices them per interrupt, from the NIC's moderation).
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
        ipp = path.interrupts_per_packet if interrupts else 0.0
        irq = assigned_irq_cost(cpu, hv, cfg, eff) if path.iotlb_miss_rate else \
            steps_cost(event_steps("device_irq", cpu, hv, cfg, eff), cpu, hv, cfg, eff)
        for r, n in irq.exits.items():
            exits[r] = exits.get(r, 0.0) + n * ipp
        guest += ipp * irq.cycles
        flushes += ipp * irq.flushes
    elif eff.mode in ("bt", "pv"):
        # a BT monitor emulates an in-kernel-class device itself; a device model in the host costs a world switch
        for s in event_steps("io_port_user" if path.user_space else "io_port", cpu, hv, cfg, eff):
            guest += sum(path.exits_per_batch.values()) / path.batch * s.cycles
        for s in event_steps("device_irq", cpu, hv, cfg, eff):
            guest += (path.interrupts_per_packet if interrupts else 0.0) * s.cycles
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

