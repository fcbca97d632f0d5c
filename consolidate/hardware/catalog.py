"""Load the hardware catalog shipped inside the package (`consolidate/hardware/data/*.yaml`).

Every figure in the catalog carries a source and a confidence (`published` or `derived`);
`missing_sources()` lists any that do not, and a test keeps it empty.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from consolidate.scenario.loader import YamlLoader
from consolidate.scenario.model import HostType

CONFIDENCE = ("measured", "published", "derived")


def _data(name: str) -> Any:
    # a copy: callers may keep or change what they get, the parsed file stays as shipped
    return copy.deepcopy(_parsed(name))


@lru_cache(maxsize=None)
def _parsed(name: str) -> Any:
    # parsed once per process (pure-Python YAML takes a tenth of a second per file, and every run reads them)
    # with the scenarios' safe loader, so `10.0e9` and `10e9` are numbers here too (YAML 1.1 reads them as strings)
    return yaml.load((resources.files("consolidate.hardware.data") / name).read_text(), Loader=YamlLoader)


@dataclass(frozen=True)
class CatalogHost:
    """A catalog host type, with the provenance of each group of its figures."""

    host_type: HostType
    processor: str
    sources: dict[str, dict[str, str]]  # "field, field" -> {source, confidence}


@dataclass(frozen=True)
class Cpu:
    """A CPU microarchitecture (one representative part). Cycle figures are core clock cycles."""

    name: str
    vendor: str
    family: str
    part: str
    year: int
    frequency_ghz: float
    cores: int
    threads: int
    roundtrip_cycles: float  # hardware VM exit + VM entry
    ipc_relative: float  # instructions per clock relative to Nehalem: scales software paths
    pause_cycles: float
    features: dict[str, bool]  # vpid (ASID on AMD), ept (NPT on AMD), apicv, posted_interrupts, ...
    tlb: dict[str, int]  # l1d_4k, l1d_2m, l1d_1g, stlb_4k, stlb_2m entries
    walk: dict[str, float]  # l1/l2/llc/mem_cycles per reference, pte_* location shares, pwc_hit
    sources: dict[str, dict[str, str]] = field(repr=False)

    def has(self, feature: str) -> bool:
        """Whether the CPU offers a virtualization feature."""
        return bool(self.features.get(feature, False))


@dataclass(frozen=True)
class Hypervisor:
    """A hypervisor's software costs (cycles) and which hardware features it uses."""

    name: str
    description: str
    calibrated_on: str  # the CPU its software cycle figures hold for
    type: int
    modes: tuple[str, ...]
    exit_overhead_cycles: float
    handler_scale: float
    emulate_cycles: float
    user_exit_cycles: float
    world_switch_cycles: float
    type2_switch_cycles: float
    timer_arm_cycles: float
    inject_cycles: float
    hrtimer_callback_cycles: float
    halt_wakeup_cycles: float
    shadow: dict[str, float] | None
    bt: dict[str, float] | None
    pv: dict[str, float] | None
    uses: dict[str, bool]
    user_space_reasons: tuple[str, ...]
    type2_reasons: tuple[str, ...] = ()
    ple_window_cycles: float = 0.0  # PAUSE-loop exiting window
    lock_holder_wait_cycles: float = 0.0  # spin of a vCPU whose lock holder is descheduled, without PLE
    io_device_cycles: float = 0.0  # in-monitor device emulation behind a port access (VMware)
    pio_in_emulated: bool = False  # IN goes through the instruction emulator (KVM before fast PIO-in)
    io_defaults: dict[str, str] = field(default_factory=dict)  # I/O path per class its guests use by default
    sources: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Nic:
    name: str
    kind: str
    line_rate_bps: float
    ports: int
    vfs_per_port: int
    sources: dict[str, dict[str, str]] = field(repr=False)
    # interrupt moderation: the most interrupts one vector (a VF's queue pair, a port's) raises per second under
    # sustained traffic; below it every packet interrupts (None: not known, the I/O path's own batching applies)
    max_interrupts_per_s: float | None = None

    @property
    def vfs_total(self) -> int:
        """SR-IOV virtual functions over all ports."""
        return self.ports * self.vfs_per_port


@dataclass(frozen=True)
class NvmeController:
    """An NVMe SSD controller a host can carry; a VM gets it whole by passthrough (or one of its SR-IOV VFs)."""

    name: str
    kind: str  # "nvme"
    interface: str  # e.g. "PCIe 3.0 x4"
    max_read_iops: float  # 4 KiB random read, datasheet maximum
    max_write_iops: float  # 4 KiB random write, datasheet maximum
    virtual_functions: int  # SR-IOV VFs exposed for assignment; 0 when none
    sources: dict[str, dict[str, str]] = field(repr=False)


@dataclass(frozen=True)
class IoPath:
    """Per-packet (or per-I/O) figures of one I/O path; see devices.yaml."""

    name: str
    description: str
    exits_per_batch: dict[str, float]
    batch: float
    user_space: bool
    interrupts_per_packet: float
    guest_cycles_per_packet: float
    backend_cycles_per_packet: float
    iotlb_miss_rate: float = 0.0
    iotlb_miss_ns: float = 0.0
    device_max_iops: float | None = None
    sources: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)


@lru_cache(maxsize=1)
def host_catalog() -> dict[str, CatalogHost]:
    """Host types known to the package, by name."""
    out: dict[str, CatalogHost] = {}
    for entry in _data("hosts.yaml"):
        entry = dict(entry)
        processor, sources = entry.pop("processor"), entry.pop("sources")
        summary = "; ".join(f"{k}: {v['source']} ({v['confidence']})" for k, v in sources.items())
        ht = HostType(**entry, source=summary)
        out[ht.name] = CatalogHost(host_type=ht, processor=processor, sources=sources)
    return out


def scenario_host_types(sc) -> dict[str, HostType]:
    """Host types a scenario can use: the catalog's, overridden by the scenario's own of the same name."""
    types_ = {name: entry.host_type for name, entry in host_catalog().items()}
    types_.update({h.name: h for h in sc.host_types})
    return types_


@lru_cache(maxsize=1)
def cpus() -> dict[str, Cpu]:
    """CPU microarchitectures by name (e.g. 'intel-haswell', 'amd-zen3')."""
    return {e["name"]: Cpu(**e) for e in _data("cpus.yaml")}


@lru_cache(maxsize=1)
def _hv_data() -> dict:
    return _data("hypervisors.yaml")


@lru_cache(maxsize=1)
def hypervisors() -> dict[str, Hypervisor]:
    """Hypervisors by name (e.g. 'kvm-qemu', 'xen-pv', 'vmware-esx-bt')."""
    out = {}
    for e in _hv_data()["hypervisors"]:
        e = dict(e)
        for k in ("modes", "user_space_reasons", "type2_reasons"):
            e[k] = tuple(e.get(k) or ())
        out[e["name"]] = Hypervisor(**e)
    return out


@lru_cache(maxsize=1)
def exit_reasons() -> dict[str, dict[str, Any]]:
    """VT-x exit reasons with their default handler cycles and AMD-V counterpart."""
    return dict(_hv_data()["exit_reasons"])


@lru_cache(maxsize=1)
def nics() -> dict[str, Nic]:
    """NICs by name, with SR-IOV VF pools."""
    return {e["name"]: Nic(**e) for e in _data("devices.yaml")["nics"]}


@lru_cache(maxsize=1)
def nvme_controllers() -> dict[str, NvmeController]:
    """NVMe controllers by name (e.g. 'intel-dc-p3700', 'samsung-pm1735'), assignable whole through the IOMMU."""
    return {e["name"]: NvmeController(**e) for e in _data("devices.yaml").get("nvme") or []}


@dataclass(frozen=True)
class MigrationFigures:
    """How one hypervisor's live migration goes on the wire and switches over (devices.yaml `migration`)."""

    hypervisor: str  # the catalog entry the figures come from (the default one when the asked one has none)
    page_header_bytes: float
    zero_marker_bytes: float
    stream_efficiency: float
    switchover_s: float
    scan_bytes_per_s: float


@lru_cache(maxsize=None)
def migration_figures(hypervisor: str | None) -> MigrationFigures:
    """Live-migration figures of a hypervisor (or of the default one when it has none, or for None)."""
    m = _data("devices.yaml")["migration"]
    name = hypervisor if hypervisor in m["hypervisors"] else m["default_hypervisor"]
    hv, st = m["hypervisors"][name], m["stream"]
    return MigrationFigures(hypervisor=name, page_header_bytes=float(st["page_header_bytes"]),
                            zero_marker_bytes=float(st["zero_marker_bytes"]),
                            stream_efficiency=float(st["stream_efficiency"]), switchover_s=float(hv["switchover_s"]),
                            scan_bytes_per_s=float(hv["scan_bytes_per_s"]))


@dataclass(frozen=True)
class VfHousekeeping:
    """Per-VM host work of a directly assigned network function whatever its traffic (devices.yaml `vf_housekeeping`):
    VF-to-PF mailbox messages per second and the host cycles the PF driver spends on each."""

    mailbox_messages_per_s: float
    host_cycles_per_message: float


@lru_cache(maxsize=1)
def vf_housekeeping() -> VfHousekeeping:
    """The fixed host-side work of one assigned network function."""
    d = _data("devices.yaml")["vf_housekeeping"]
    return VfHousekeeping(mailbox_messages_per_s=float(d["mailbox_messages_per_s"]),
                          host_cycles_per_message=float(d["host_cycles_per_message"]))


@lru_cache(maxsize=1)
def packet_bytes() -> float:
    """Bytes one network packet of the I/O paths' default size takes on the wire (devices.yaml `packet`)."""
    return float(_data("devices.yaml")["packet"]["wire_bytes"])


@lru_cache(maxsize=None)
def io_paths_of(section: str) -> tuple[str, ...]:
    """Names of the paths in one section of devices.yaml (`io_paths` for the network, `disk_paths`)."""
    return tuple(_data("devices.yaml")[section])


@lru_cache(maxsize=1)
def io_paths() -> dict[str, IoPath]:
    """Network I/O paths (`emulated`, `virtio`, `vhost`, `passthrough`, `sriov`) and disk paths, by name."""
    d = _data("devices.yaml")
    return {name: IoPath(name=name, **spec) for name, spec in {**d["io_paths"], **d["disk_paths"]}.items()}


def _numeric_keys(obj: Any, prefix: str = "") -> list[str]:
    """Dotted names of the numeric leaves of a catalog entry (bools and names excluded)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("sources", "features", "uses"):
                continue
            out += _numeric_keys(v, f"{prefix}{k}.")
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and obj != 0:
        out.append(prefix[:-1])  # a zero is structural (no such cost on this path) and needs no source
    return out


def missing_sources() -> list[str]:
    """Catalog figures without a source or with an unknown confidence, as 'file:entry:field' strings."""
    problems = []

    def check(file: str, name: str, entry: dict, skip: tuple[str, ...] = ()) -> None:
        sources = entry.get("sources") or {}
        covered = set()
        for key, src in sources.items():
            if not src.get("source") or src.get("confidence") not in CONFIDENCE:
                problems.append(f"{file}:{name}:{key}: needs a source and a confidence in {CONFIDENCE}")
            covered.update(k.strip() for k in key.split(","))
        for leaf in _numeric_keys(entry):
            if leaf in skip:
                continue
            parts = leaf.split(".")
            if not any(".".join(parts[:i]) in covered for i in range(1, len(parts) + 1)):
                problems.append(f"{file}:{name}:{leaf}: no source")

    for e in _data("cpus.yaml"):
        check("cpus.yaml", e["name"], e, skip=("year", "cores", "threads", "frequency_ghz"))
        if not {"part, year, frequency_ghz, cores, threads"} & set(e.get("sources", {})):
            problems.append(f"cpus.yaml:{e['name']}: no source for the part's specification")
    for e in _hv_data()["hypervisors"]:
        check("hypervisors.yaml", e["name"], e, skip=("type", "handler_scale"))
        if e.get("calibrated_on") not in {c["name"] for c in _data("cpus.yaml")}:
            problems.append(f"hypervisors.yaml:{e['name']}: calibrated_on must name a catalog CPU")
    for name, e in _hv_data()["exit_reasons"].items():
        if not e.get("why"):
            problems.append(f"hypervisors.yaml:exit_reasons:{name}: handler_cycles needs a reason")
    d = _data("devices.yaml")
    check("devices.yaml", "packet", d["packet"])
    check("devices.yaml", "vf_housekeeping", d["vf_housekeeping"])
    check("devices.yaml", "migration.stream", d["migration"]["stream"])
    for name, e in d["migration"]["hypervisors"].items():
        check("devices.yaml", f"migration.{name}", e)
    for e in d["nics"]:
        check("devices.yaml", e["name"], e)
    for e in d.get("nvme") or []:
        check("devices.yaml", e["name"], e)
    for name, e in {**d["io_paths"], **d["disk_paths"]}.items():
        check("devices.yaml", name, e)
    for e in _data("hosts.yaml"):
        check("hosts.yaml", e["name"], e)
    return problems
