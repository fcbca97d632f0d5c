"""Direct device assignment as one concept: which devices a VM holds, which pools a host offers, and what
holding them means for moving the VM.

A VM holds a device when one of its I/O classes (`net`, `disk`) runs on a path that gives it hardware of its own
through the IOMMU: an SR-IOV virtual function (`sriov`), a whole NIC port (`passthrough`) or a whole NVMe
controller (`nvme-passthrough`). Emulated and paravirtual paths share the host's devices through the hypervisor
and hold nothing. Every part of the simulator that cares (placement, consolidation, drains, failover, the cost
model) asks this module rather than decoding `io.net` itself.

Pools are counted per host: VFs over every port of the NICs the host type lists (0 without an IOMMU), whole
NIC ports, and NVMe controllers. A VM's driver binds to its device's model, so it may only ever move to a host
whose pool of that kind is of the same model (the first NIC, or the first NVMe controller, listed on the type).
"""
from __future__ import annotations

from dataclasses import dataclass

from consolidate.hardware import catalog as cat
from consolidate.scenario.model import HostType, VmGroup

@dataclass(frozen=True)
class IoClass:
    """One class of a VM's I/O (a field of the scenario's IoSpec): what one operation is called, the trace columns
    whose sum is its rate, the path used when nothing is set, and the directly assigned path whose guest driver
    counts as native (the cost model charges other paths' drivers for what they do beyond it)."""

    name: str
    catalog_section: str  # where devices.yaml lists this class's paths
    rate_unit: str  # result columns are <name>_<rate_unit>_{demand,served,unserved}
    trace_columns: tuple[str, ...]
    default_path: str
    native_path: str


IO_CLASSES = (IoClass("net", "io_paths", "pps", ("net_rx_pps", "net_tx_pps"), "virtio", "passthrough"),
              IoClass("disk", "disk_paths", "iops", ("disk_iops",), "virtio-blk", "nvme-passthrough"))


def paths_of(io_class: IoClass) -> tuple[str, ...]:
    """The catalog's I/O paths of one class (e.g. emulated, virtio, vhost, passthrough, sriov for net)."""
    return cat.io_paths_of(io_class.catalog_section)
DEVICE_CLASSES = tuple(c.name for c in IO_CLASSES)  # the I/O classes of a VM, as IoSpec names them
POOLS = ("vf", "port", "nvme")  # host pools a directly assigned device is drawn from
VF, PORT, NVME = range(len(POOLS))
POOL_OF_PATH = {"sriov": VF, "passthrough": PORT, "nvme-passthrough": NVME}
POOL_NAMES = {VF: "an SR-IOV VF", PORT: "a passthrough NIC port", NVME: "a passthrough NVMe controller"}
FREE_NAMES = {VF: "a free VF", PORT: "a free NIC port", NVME: "a free NVMe controller"}

# How a VM holding devices moves (VmGroup.migration_policy, or forced):
PINNED, COLD, FAILOVER = "pinned", "cold", "failover"


@dataclass(frozen=True)
class Holding:
    """The devices one VM group holds: pool index per device class that holds one, and how the VM moves."""

    pools: tuple[int, ...]  # pool indices (VF, PORT, NVME), one per device held
    mobility: str | None  # None: holds nothing, moves like any VM; else PINNED, COLD or FAILOVER

    @property
    def holds(self) -> bool:
        return bool(self.pools)


def group_holding(group: VmGroup) -> Holding:
    """What a VM group's own I/O configuration holds. Only the group decides: a host type's virtualization
    defaults cannot assign devices (validation rejects it), because placement must know a VM's needs before it
    chooses a host.

    An NVMe controller pins the VM whatever its migration_policy says: its disk's data lives on that host's drive,
    and moving it would be a storage migration this model does not have. Failover needs a VF to unplug (validation
    rejects it otherwise)."""
    io = group.virtualization.io if group.virtualization is not None else None
    paths = [getattr(io, c) for c in DEVICE_CLASSES] if io is not None else []
    pools = tuple(POOL_OF_PATH[p] for p in paths if p in POOL_OF_PATH)
    if not pools:
        return Holding((), None)
    return Holding(pools, PINNED if NVME in pools else group.migration_policy)


def host_pools(ht: HostType) -> tuple[int, ...]:
    """Devices per pool (VF, PORT, NVME) one host of this type offers for assignment; none without an IOMMU."""
    if not ht.iommu:
        return (0,) * len(POOLS)
    nics = cat.nics()

    def vfs(n) -> int:
        per_port = nics[n.model].vfs_per_port if n.vfs_per_port is None else n.vfs_per_port
        return per_port * nics[n.model].ports * n.count

    return (sum(vfs(n) for n in ht.nics), sum(nics[n.model].ports * n.count for n in ht.nics),
            sum(n.count for n in ht.nvme))


def host_pool_models(ht: HostType) -> tuple[str | None, ...]:
    """The model a driver binds to, per pool (VF, PORT, NVME): the first NIC and the first NVMe controller the host
    type lists (None where it has none)."""
    nic = ht.nics[0].model if ht.nics else None
    return (nic, nic, ht.nvme[0].model if ht.nvme else None)


def describe(pools: tuple[int, ...]) -> str:
    """'an SR-IOV VF and a passthrough NVMe controller', for messages."""
    return " and ".join(POOL_NAMES[p] for p in pools)
