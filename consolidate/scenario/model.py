"""Scenario schema v1 as pydantic models.

Every model forbids unknown keys: a typo in a capacity plan must be an error, not a silently
ignored field. Shorthands (`placement: pabfd`, `type: small`) are normalised before validation so
that the error paths of the long form are the paths users see.
"""
from __future__ import annotations

import typing
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator
from pydantic.types import AllowInfNan
from pydantic_core import PydanticCustomError

# every float field is finite (.inf or .nan in a capacity plan is a typo, not a plan); booleans are refused by
# Model below wherever a field takes none (pydantic would read `duration_s: true` as one second)
Int = int
Float = Annotated[float, AllowInfNan(False)]
PosFloat = Annotated[Float, Field(gt=0)]
NonNegFloat = Annotated[Float, Field(ge=0)]
Fraction = Annotated[Float, Field(ge=0, le=1)]
MAX_SEED = 2**63 - 1  # seeds are written as int64 (summary, Parquet)
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")]


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("consolidate", message)


@lru_cache(maxsize=None)
def _takes_bool(tp: Any) -> bool:
    return tp is bool or any(_takes_bool(a) for a in typing.get_args(tp) if isinstance(a, typing.Hashable))


def _has_bool(v: Any) -> bool:
    return isinstance(v, bool) or (isinstance(v, (list, tuple)) and any(isinstance(x, bool) for x in v))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if _has_bool(v) and not _takes_bool(cls.model_fields[info.field_name].annotation):
            got = str(v).lower() if isinstance(v, bool) else "true/false in the list"
            raise PydanticCustomError("consolidate", f"invalid value (got {got}, expected a number, not true/false)")
        return v


class IoSpec(Model):
    """The I/O path of each I/O class of a VM, a path of the hardware catalog (`consolidate catalog devices`);
    checked against it by consolidate.validation, so a new path is a catalog entry, not a schema change."""

    net: Name | None = Field(default=None, description="emulated, virtio, vhost, passthrough or sriov")
    disk: Name | None = Field(default=None, description="virtio-blk or nvme-passthrough")


class VirtSpec(Model):
    """How VMs are virtualized. On a host type it sets the defaults of the VMs placed there; on a VM group it
    overrides them. Unset fields inherit (built-in defaults: kvm-qemu, hw, the best paging the CPU offers,
    every feature the CPU has, net virtio, disk virtio-blk)."""

    hypervisor: Name | None = Field(default=None, description="catalog hypervisor (consolidate catalog hypervisors)")
    mode: Literal["hw", "bt", "pv", "native"] | None = None
    paging: Literal["ept", "npt", "shadow"] | None = None
    features: dict[Literal["vpid", "apicv", "posted_interrupts", "tpr_shadow", "vmcs_shadowing", "ple",
                           "preemption_timer", "hv_remote_tlb_flush", "hv_synthetic_timers", "eli"], bool] = Field(
        default_factory=dict, description="force a feature on (an error if the CPU or hypervisor lacks it) or off; "
        "hv_* are Hyper-V enlightenments; eli: exitless interrupts for directly assigned devices (off by default)")
    io: IoSpec = Field(default_factory=IoSpec)
    host_page: Literal["4k", "2m", "1g"] | None = Field(default=None, description="page size backing guest memory")
    guest_page: Literal["4k", "2m"] | None = Field(default=None, description="page size the guest maps its "
                                                   "working set with (default: the profile's, else 4k)")
    nested_tlb: bool | None = Field(default=None, description="a nested TLB / 2D page-walk cache for the host "
                                    "dimension of nested walks (Bhargava et al. 2008); default off")
    working_set_pages: Annotated[Int, Field(gt=0)] | None = Field(
        default=None, description="pages a guest touches between transitions (TLB refill after a flush)")


class Overhead(Model):
    """The virtualization overhead model: exits, TLB flushes, page walks, world switches and I/O paths priced
    by the core model and added to each VM's demand."""

    enabled: bool = True
    timeslice_s: PosFloat = Field(default=0.003, description="scheduler slice when vCPUs share a core")


class Consolidation(Model):
    """Dynamic consolidation every scheduling interval (Beloglazov & Buyya 2012): overload detection,
    VM selection, PABFD placement, underload evacuation and switch-off."""

    # checked against the policy registry by consolidate.validation (this package may not import policies)
    policy: str = Field(default="thr-mmt-0.8", description="'<detector>-<selector>-<parameter>' or 'none' "
                        "(consolidate catalog policies)")
    underload: bool = Field(default=True, description="also empty the least-utilised hosts")
    history_intervals: Annotated[Int, Field(ge=10)] = Field(default=30, description="utilisation history kept")


class Migration(Model):
    """How live migrations run. `fixed` is CloudSim's model (duration = memory / (bandwidth_share x the
    destination's NIC), the VM degraded by cpu_degradation, destination_cpu_share of it reserved on the
    destination; no network). `precopy` runs pre-copy rounds over the network topology, links shared
    max-min fairly among concurrent migrations."""

    model: Literal["fixed", "precopy"] = "fixed"
    bandwidth_share: Annotated[Float, Field(gt=0, le=1)] = 0.5
    cpu_degradation: Fraction = 0.1
    destination_cpu_share: Fraction = 0.1
    downtime_target_s: PosFloat = Field(default=0.03, description="SimGrid's default maximum downtime")
    max_rounds: Annotated[Int, Field(ge=1)] = 30
    working_set_fraction: Annotated[Float, Field(gt=0, le=1)] = Field(
        default=0.9, description="dirty pages per round are capped at this share of memory (SimGrid)")
    page_bytes: Annotated[Int, Field(gt=0)] = 4096
    dirty_pages_per_s_at_full_load: NonNegFloat = Field(
        default=12800.0, description="pages dirtied per second per vCPU at 100% CPU, when the trace has no "
        "dirty_pages_per_s (an assumption: 50 MB/s)")
    state_bytes: NonNegFloat = Field(default=0.0, description="device and CPU state sent with the last round")
    costs: Literal["physical", "ideal"] = Field(
        default="physical", description="precopy: 'physical' sends pages with their headers and zero pages as "
        "markers over TCP, no faster than the sender scans memory, and adds the hypervisor's switch-over to the "
        "downtime (devices.yaml migration); 'ideal' is the plain closed form (memory bytes at the link rate)")
    zero_fraction: Fraction = Field(default=0.0, description="share of a VM's memory in zero pages, where its trace "
                                    "gives no mem_used_bytes (then 1 - used / memory)")
    dirty_compression_ratio: Annotated[Float, Field(ge=1)] = Field(
        default=1.0, description="XBZRLE: memory bytes per byte sent for pages dirtied after round 0 (1: off)")
    switchover_s: NonNegFloat | None = Field(
        default=None, description="fixed cost of the stop-and-copy, s (default: the VM's hypervisor's figure)")
    cpu_mips_per_gbps: NonNegFloat = Field(default=500.0, description="CPU at each end per Gbit/s migrated")
    max_concurrent_per_host: Annotated[Int, Field(ge=1)] | None = Field(
        default=None, description="migrations a host may send or receive at once (excess ones wait)")
    cold_boot_s: NonNegFloat = Field(default=60.0, description="boot time added to a cold migration's downtime "
                                     "(an assumption: a server OS restarting with its services)")
    failover_net: Name = Field(
        default="virtio", description="paravirtual NIC a failover VM runs on while its VF is unplugged (Linux "
        "net_failover pairs the VF with a virtio-net standby)")
    failover_gap_s: NonNegFloat = Field(
        default=1.0, description="service gap of each VF hot-unplug and each re-plug, s (an assumption: the PCIe "
        "hot-plug handshake and the bond's switch-over; Zhai et al. 2008 describe the mechanism, not this figure)")


class NetworkSpec(Model):
    """The datacenter network for pre-copy migrations."""

    topology: Literal["flat", "leaf-spine", "fat-tree", "graph"] = "flat"
    hosts_per_rack: Annotated[Int, Field(gt=0)] = 40
    spines: Annotated[Int, Field(gt=0)] = 4
    uplink_bps: PosFloat = 40e9
    k: Annotated[Int, Field(ge=2)] | None = Field(default=None, description="fat-tree arity (even)")
    link_bps: PosFloat = 10e9
    links: list[tuple[str, str, PosFloat] | tuple[str, str, PosFloat, NonNegFloat]] | None = Field(
        default=None, description="graph topology: [node, node, capacity_bps] or [node, node, capacity_bps, "
        "latency_s] with hosts named h0, h1, ...")
    link_latency_s: NonNegFloat = Field(default=0.0, description="one-way latency of every host link (and of a "
                                        "graph link that gives none)")
    uplink_latency_s: NonNegFloat = Field(default=0.0, description="one-way latency of switch-to-switch links "
                                          "(leaf-spine, fat-tree)")
    sharing: Literal["maxmin", "lv08"] = Field(
        default="maxmin", description="how migrations share links: maxmin (equal shares at every bottleneck, the "
        "default) or lv08 (SimGrid's LV08: shares weighted by route latency and bandwidth, latency and bandwidth "
        "factors, TCP window bound; docs/io-and-migration.md)")


class NicSpec(Model):
    """NICs of a host type, from the catalog (`consolidate catalog devices`)."""

    model: Name
    count: Annotated[Int, Field(ge=1)] = 1
    vfs_per_port: Annotated[Int, Field(ge=0)] | None = Field(
        default=None, description="VFs enabled per port (sriov_numvfs), at most the model's maximum; "
        "default: the maximum")
    max_interrupts_per_s: PosFloat | None = Field(
        default=None, description="interrupt moderation: most interrupts per second one vector (a VF's, a port's) "
        "raises under load (ethtool -C rx-usecs U gives 1e6/U); default: the model's driver default")


class NvmeSpec(Model):
    """NVMe controllers of a host type, from the catalog (`consolidate catalog devices`), each assignable whole to
    one VM by passthrough (io.disk: nvme-passthrough)."""

    model: Name
    count: Annotated[Int, Field(ge=1)] = 1


class Drain(Model):
    """A maintenance drain: at `at_s`, every VM leaves the given hosts (host indices in scenario order, a host
    type, or a rack of network.hosts_per_rack hosts) and they take no VM until the run ends."""

    at_s: NonNegFloat
    hosts: list[Annotated[Int, Field(ge=0)]] | None = None
    host_type: Name | None = None
    rack: Annotated[Int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> "Drain":
        given = [k for k in ("hosts", "host_type", "rack") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _fail(f"give exactly one of hosts, host_type, rack (got {', '.join(given) if given else 'none'})")
        return self


class Lifetime(Model):
    """A distribution of durations by its mean: exponential; Weibull with `shape` k (k < 1: failures cluster early,
    a decreasing hazard, as Schroeder & Gibson measured between failures); lognormal with `shape` sigma (the
    log's standard deviation, as repair times are distributed)."""

    distribution: Literal["exponential", "weibull", "lognormal"] = "exponential"
    mean_s: PosFloat
    shape: PosFloat | None = Field(default=None, description="Weibull k or lognormal sigma (not for exponential)")

    @model_validator(mode="after")
    def _shape(self) -> "Lifetime":
        if (self.distribution == "exponential") != (self.shape is None):
            raise _fail(f"{self.distribution} takes {'no shape' if self.distribution == 'exponential' else 'a shape'} "
                        f"(got shape {self.shape})")
        return self


class FailureProcess(Model):
    """Hosts (of one type, or every host) or whole racks failing and being repaired, one renewal process each:
    up for a time to failure, down for a time to repair, again."""

    host_type: Name | None = Field(default=None, description="only hosts of this type (default: every host)")
    time_to_failure: Lifetime
    time_to_repair: Lifetime
    source: str | None = Field(default=None, description="where the figures come from")


class Failures(Model):
    """Host and rack failures. Every draw comes from the scenario's seed, one stream per host and per rack, so a
    host's failures do not change when others are added."""

    hosts: list[FailureProcess] = Field(default_factory=list, description="independent host failures")
    racks: list[FailureProcess] = Field(default_factory=list, description="correlated failures: a rack of "
                                        "network.hosts_per_rack hosts (a power or top-of-rack domain) at once")
    trace: str | None = Field(default=None, description="CSV file of failures: target (host or rack), index, "
                              "start_s, end_s")


class HostType(Model):
    """A physical server model. Power is an 11-point table (0%, 10%, ..., 100% CPU) or idle/max watts."""

    name: Name
    cores: Annotated[Int, Field(gt=0)]
    mips_per_core: PosFloat
    memory_mb: Annotated[Int, Field(gt=0)]
    network_bps: PosFloat = 1e9
    power_w: Annotated[list[NonNegFloat], Field(min_length=11, max_length=11)] | None = Field(
        default=None, description="11 points: watts at 0%, 10%, ..., 100% CPU")
    power_idle_w: NonNegFloat | None = None
    power_max_w: NonNegFloat | None = None
    cpu: Name | None = Field(default=None, description="catalog CPU microarchitecture (consolidate catalog cpus)")
    clock_ghz: PosFloat | None = Field(default=None, description="this host's core clock (GHz): the core model's "
                                       "cycles become MIPS at it; default the catalog CPU's representative part")
    iommu: bool = Field(default=True, description="VT-d / AMD-Vi present: needed to assign devices or VFs to VMs")
    nics: list[NicSpec] = Field(default_factory=list, description="NICs whose ports (passthrough) and SR-IOV VF "
                                "pools VMs can be given directly")
    nvme: list[NvmeSpec] = Field(default_factory=list, description="NVMe controllers VMs can be given whole")
    virtualization: VirtSpec | None = Field(default=None, description="defaults for VMs on this host type")
    source: str | None = Field(default=None, description="where the figures come from")

    @model_validator(mode="after")
    def _power_given_once(self) -> "HostType":
        table = self.power_w is not None
        pair = self.power_idle_w is not None or self.power_max_w is not None
        if table == pair:
            raise _fail("give either power_w (11 points) or power_idle_w and power_max_w "
                        f"(got {'both' if table else 'neither'})")
        if pair and (self.power_idle_w is None or self.power_max_w is None):
            raise _fail("power_idle_w and power_max_w go together (got only one)")
        if pair and self.power_max_w < self.power_idle_w:
            raise _fail(f"power_max_w below power_idle_w (got {self.power_max_w} < {self.power_idle_w})")
        return self

    @property
    def capacity_mips(self) -> float:
        """CPU capacity of one host, MIPS."""
        return self.cores * self.mips_per_core

    def power_curve_w(self) -> list[float]:
        """Watts at 0%, 10%, ..., 100% CPU utilisation (11 points), linear between points."""
        if self.power_w is not None:
            return list(self.power_w)
        return [self.power_idle_w + (self.power_max_w - self.power_idle_w) * i / 10 for i in range(11)]


class HostGroup(Model):
    type: Name
    count: Annotated[Int, Field(ge=0)]
    partition: Name | None = Field(default=None, description="the independent partition (cluster, zone) these "
                                   "hosts belong to; docs/partitions.md")


class VmType(Model):
    name: Name
    vcpus: Annotated[Int, Field(gt=0)] = 1
    mips_per_vcpu: PosFloat
    memory_mb: Annotated[Int, Field(gt=0)]


class TypeAssignment(Model):
    """How VMs of a group get their type: `fixed` (one type), `blocks` (equal consecutive blocks, as
    CloudSim's PlanetLab study does: VM i gets type i // ceil(n/k)), `cycle` (i % k), `random` (by weights)."""

    rule: Literal["fixed", "blocks", "cycle", "random"]
    types: Annotated[list[Name], Field(min_length=1)]
    weights: list[PosFloat] | None = None

    @model_validator(mode="after")
    def _check(self) -> "TypeAssignment":
        if self.rule == "fixed" and len(self.types) != 1:
            raise _fail(f"rule 'fixed' takes one type (got {len(self.types)})")
        if self.weights is not None:
            if self.rule != "random":
                raise _fail(f"weights apply only to rule 'random' (got rule {self.rule!r})")
            if len(self.weights) != len(self.types):
                raise _fail(f"one weight per type (got {len(self.weights)} weights for {len(self.types)} types)")
        return self


class Synthetic(Model):
    """A synthetic CPU profile: util(t) = mean + amplitude*sin(2*pi*t/period_s + phase) + N(0, noise_std), clipped to 0..1."""

    mean: Fraction
    amplitude: Fraction = 0.0
    period_s: PosFloat = 86400.0
    noise_std: NonNegFloat = 0.0
    random_phase: bool = Field(default=True, description="draw each VM's phase uniformly (from the scenario seed)")


# trace kinds: exactly one names a group's source (workload/sources.py has a reader for each)
TRACE_KINDS = ("planetlab", "native", "synthetic", "opendc", "bitbrains", "azure", "alibaba2018", "google2019")
# kinds whose traces carry each VM's start and end (and its shape): a group may omit count
LIFECYCLE_KINDS = ("opendc", "bitbrains", "azure", "alibaba2018", "google2019")


class TraceSource(Model):
    """Exactly one of: a PlanetLab day (`builtin:20110303` or a folder), a native CSV/Parquet file or folder,
    a synthetic profile, or a public cluster trace (opendc, bitbrains, azure, alibaba2018, google2019: a folder in the
    published layout)."""

    planetlab: str | None = None
    native: str | None = None
    synthetic: Synthetic | None = None
    opendc: str | None = Field(default=None, description="OpenDC workload folder: tasks.parquet + fragments.parquet, "
                               "or meta.parquet + trace.parquet")
    bitbrains: str | None = Field(default=None, description="GWA-T-12 Bitbrains or GWA-T-13 Materna: a folder of "
                                  "';'-separated per-VM CSV files (or one such file)")
    azure: str | None = Field(default=None, description="Azure Public Dataset V1/V2: a folder holding vmtable.csv.gz "
                              "and vm_cpu_readings-file-*-of-*.csv.gz (or vmtable/ and vm_cpu_readings/ subfolders)")
    alibaba2018: str | None = Field(default=None, description="Alibaba cluster-trace-v2018, containers as the VMs: "
                                    "a folder holding container_meta.csv and container_usage.csv (gzip or plain)")
    google2019: str | None = Field(default=None, description="Google cluster-data 2019, instances as the VMs: a "
                                   "folder holding instance_events* and instance_usage* files (JSON, Parquet or CSV "
                                   "with a header, as exported from BigQuery)")
    repeat: bool = Field(default=False, description="loop a trace shorter than duration_s instead of failing")
    order: str | None = Field(default=None, description="with planetlab: a text file naming the day's trace files, "
                              "one per line, in the order VMs get them (default: sorted by name)")
    start: str | float | None = Field(
        default=None, description="the trace time that is the run's t = 0: seconds (or ms, as the trace's clock), "
        "or an ISO timestamp; default: the trace's earliest sample")
    gap: Literal["hold", "zero", "error"] = Field(
        default="hold", description="a VM's samples further apart than gap_s: hold the last value over the gap "
        "(default, as OpenDC replays a fragment), count zero, or stop with an error naming the row")
    gap_s: PosFloat | None = Field(default=None, description="a step longer than this is a gap (default: twice "
                                   "the VM's median step)")
    over_100: Literal["clip", "error"] = Field(
        default="clip", description="utilisation above 100%: clip and count it in the run's warnings, or an error")
    limit: Annotated[Int, Field(ge=1)] | None = Field(default=None, description="at most this many of the trace's "
                                                      "VMs (the first, in the trace's order, after sample)")
    sample: Annotated[Float, Field(gt=0, le=1)] | None = Field(
        default=None, description="keep this fraction of the trace's VMs, drawn from the scenario seed")
    ncu_vcpus: PosFloat | None = Field(default=None, description="with google2019: the vCPUs one normalised CPU "
                                       "unit (NCU, the largest machine's CPU) stands for; needed by shape as-is "
                                       "and nearest (no default: the trace does not say)")
    nmu_mib: PosFloat | None = Field(default=None, description="with google2019: the MiB that 1.0 of normalised "
                                     "memory (the largest machine's) stands for; gives memory sizes and used memory")

    @model_validator(mode="after")
    def _exactly_one(self) -> "TraceSource":
        given = [k for k in TRACE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise _fail(f"give exactly one trace source (got {', '.join(given) if given else 'none'}, "
                        f"expected one of {', '.join(TRACE_KINDS)})")
        if self.order is not None and self.planetlab is None:
            raise _fail(f"order applies to planetlab traces only (got order with {given[0]})")
        for opt in ("ncu_vcpus", "nmu_mib"):
            if getattr(self, opt) is not None and self.google2019 is None:
                raise _fail(f"{opt} applies to google2019 traces only (got {opt} with {given[0]})")
        return self

    @property
    def kind(self) -> str:
        """The one source field given."""
        return next(k for k in TRACE_KINDS if getattr(self, k) is not None)


class VmGroup(Model):
    name: Name | None = None
    count: Annotated[Int, Field(ge=0)] | None = Field(
        default=None, description="number of VMs; for file traces, defaults to one VM per trace")
    type: TypeAssignment
    trace: TraceSource
    profile: Name = Field(default="generic", description="fills event and I/O columns the trace lacks "
                          "(generic, web, database, batch, hpc, idle_desktop, network_appliance)")
    virtualization: VirtSpec | None = None
    restart_s: NonNegFloat = Field(default=60.0, description="high-availability restart: from a host failure to "
                                   "the VM booting on another host (an assumption: boot of a server OS)")
    start_s: NonNegFloat | None = Field(default=None, description="every VM of the group arrives at this time "
                                        "(s; default: when its trace starts, else 0)")
    end_s: PosFloat | None = Field(default=None, description="every VM of the group leaves at this time (s; "
                                   "default: when its trace ends, else the end of the run)")
    shape: Literal["group", "as-is", "nearest"] | dict[str, Name] = Field(
        default="group", description="each VM's vCPUs and memory: the group's type (default), the trace's own "
        "shape (as-is), the smallest scenario VM type that holds it (nearest), or a table "
        "{'<vcpus>x<memory_mb>': type}")
    partition: Name | None = Field(default=None, description="the partition these VMs run in: placed, "
                                   "consolidated and migrated on its hosts only (docs/partitions.md)")
    migration_policy: Literal["pinned", "cold", "failover"] = Field(
        default="pinned", description="VMs with a passthrough device or SR-IOV VF: pinned (never migrated), "
        "cold (stopped, memory copied, started on a host with the same NIC model) or failover (SR-IOV only: the "
        "VF is hot-unplugged, the VM runs on a paravirtual NIC while it migrates live, and gets a VF back at the "
        "destination when one is free)")

    @field_validator("type", mode="before")
    @classmethod
    def _type_shorthand(cls, v: Any) -> Any:
        return {"rule": "fixed", "types": [v]} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _count_for_synthetic(self) -> "VmGroup":
        if self.trace.synthetic is not None and self.count is None:
            raise _fail("a synthetic group needs count (got none)")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise _fail(f"end_s must be after start_s (got start_s {self.start_s:g}, end_s {self.end_s:g})")
        # failover needs a VF to unplug: consolidate.validation checks it against the device-assignment rules
        return self


class Placement(Model):
    """Initial placement. `cpu_basis` is the CPU size a VM is packed by: its demand in the first interval
    (what CloudSim's PABFD sees), its peak over the run, or its nominal vCPUs x MIPS."""

    # a registered placement name or alias: consolidate.validation checks it and normalises aliases
    policy: str = Field(default="power-aware-best-fit-decreasing",
                        description="placement name or alias (consolidate catalog policies)")
    cpu_basis: Literal["initial_demand", "peak_demand", "nominal"] = "initial_demand"


OUTPUT_FRAMES = ("summary", "hosts", "vms", "host_intervals", "vm_intervals", "migrations", "overhead_reasons",
                 "maintenance", "failures", "datacenter")
# above this many VM-intervals (VMs x intervals) a run writes no CSV and samples vm_intervals unless told otherwise
BIG_RUN_VM_INTERVALS = 10_000_000
DEFAULT_VM_SAMPLE = 1000


class VmSample(Model):
    sample: Annotated[Int, Field(ge=1)] = Field(description="VMs kept in vm_intervals, drawn from the seed")


class Outputs(Model):
    """Which frames a run writes, how much of vm_intervals, and whether CSV goes beside Parquet. The defaults
    write everything for a run of at most BIG_RUN_VM_INTERVALS VM-intervals; above it, no CSV and vm_intervals
    sampled to DEFAULT_VM_SAMPLE VMs."""

    frames: list[Literal[OUTPUT_FRAMES]] | None = Field(  # type: ignore[valid-type]
        default=None, description="frames written (default: every frame the run produces)")
    vm_intervals: Literal["full", "off"] | VmSample | None = Field(
        default=None, description="full, off or {sample: N}; default full up to 10,000,000 VM-intervals, "
        "else {sample: 1000}")
    csv: bool | None = Field(default=None, description="also write CSV (default: up to 10,000,000 VM-intervals)")

    @field_validator("vm_intervals", mode="before")
    @classmethod
    def _one_form(cls, v: Any) -> Any:
        # checked here so a wrong value gets one message, not one per form the union tries
        if v is None or v in ("full", "off") or isinstance(v, VmSample):
            return v
        n = v.get("sample") if isinstance(v, dict) and set(v) == {"sample"} else None
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            return VmSample(sample=n)
        raise _fail(f"invalid value (got {v!r}, expected full, off or {{sample: N}} with N VMs, N >= 1)")

    @field_validator("frames")
    @classmethod
    def _unique(cls, v: Any) -> Any:
        if v is not None and len(set(v)) != len(v):
            raise _fail("invalid value (got a frame twice, expected each frame once)")
        return v

    def vm_detail(self, vm_intervals: int) -> str | int:
        """'full', 'off' or the number of VMs sampled, for a run of `vm_intervals` VM-intervals."""
        if self.frames is not None and "vm_intervals" not in self.frames:
            return "off"
        if self.vm_intervals is None:
            return "full" if vm_intervals <= BIG_RUN_VM_INTERVALS else DEFAULT_VM_SAMPLE
        return self.vm_intervals if isinstance(self.vm_intervals, str) else self.vm_intervals.sample

    def csv_for(self, vm_intervals: int) -> bool:
        """Whether CSV is written beside Parquet for a run of `vm_intervals` VM-intervals."""
        return self.csv if self.csv is not None else vm_intervals <= BIG_RUN_VM_INTERVALS


class Scenario(Model):
    """A whole scenario file (schema v1)."""

    schema_version: Literal[1] = 1
    name: Name
    description: str = ""
    seed: Annotated[Int, Field(ge=0, le=MAX_SEED)] = 0
    duration_s: PosFloat
    interval_s: PosFloat
    host_types: list[HostType] = Field(default_factory=list, description="in addition to the catalog's")
    hosts: Annotated[list[HostGroup], Field(min_length=1)]
    host_order: Literal["groups", "interleaved"] = Field(
        default="groups", description="host indices: group after group, or the groups in turn while each has "
        "hosts left (CloudSim's PlanetLab study: host i has type i % 2); drains and racks follow this order")
    vm_types: Annotated[list[VmType], Field(min_length=1)]
    vms: Annotated[list[VmGroup], Field(min_length=1)]
    placement: Placement = Field(default_factory=Placement)
    cpu_overcommit: PosFloat = Field(default=1.0, description="packable CPU = capacity x this ratio")
    power_off_idle_hosts: bool = Field(default=True, description="hosts without VMs draw 0 W")
    on_unplaceable: Literal["error", "reject", "queue"] = Field(
        default="error", description="a VM that fits no host: stop with an error, record a rejection, or queue it "
        "(first come first served, placed when a host has room)")
    max_wait_s: PosFloat | None = Field(default=None, description="with on_unplaceable: queue, a VM waiting longer "
                                        "is rejected (default: it waits to the end)")
    memory_basis: Literal["provisioned", "used"] = Field(
        default="provisioned", description="placement packs VMs by their provisioned memory (default) or by the "
        "most their trace's mem_used_bytes reaches (an overcommit of memory)")
    overhead: Overhead | None = Field(default=None, description="virtualization overhead model (off when absent)")
    consolidation: Consolidation | None = Field(default=None, description="dynamic consolidation (off when absent)")
    migration: Migration = Field(default_factory=Migration)
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    maintenance: list[Drain] = Field(default_factory=list, description="maintenance drains")
    failures: Failures | None = Field(default=None, description="host and rack failures (none when absent)")
    maintenance_baseline: bool = Field(
        default=True, description="also run the scenario without its drains (same seed) and report what they "
        "cost in energy and SLA (drain_impact_* in the summary); doubles the run time")
    cloudsim_compat: bool = Field(default=False, description="reproduce CloudSim 3.0.3's conventions: initial "
                                  "placement by full VM MIPS, and a host whose VMs ask for no CPU draws no power")
    outputs: Outputs = Field(default_factory=Outputs, description="frames written and their detail")

    _file: str = PrivateAttr(default="<dict>")
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("placement", mode="before")
    @classmethod
    def _placement_shorthand(cls, v: Any) -> Any:
        return {"policy": v} if isinstance(v, str) else v

    def set_origin(self, file: str, base_dir: Path) -> "Scenario":
        """Record where the scenario came from (for messages) and what its relative paths resolve against;
        returns self."""
        self._file, self._base_dir = file, Path(base_dir)
        return self

    @property
    def file(self) -> str:
        """The file this scenario came from (or '<dict>'), for error messages."""
        return self._file

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the scenario are resolved against."""
        return self._base_dir

    @property
    def overhead_enabled(self) -> bool:
        """Whether the virtualization overhead model is on."""
        return self.overhead is not None and self.overhead.enabled

    @property
    def n_intervals(self) -> int:
        """Number of accounting intervals in the run."""
        return int(round(self.duration_s / self.interval_s))
