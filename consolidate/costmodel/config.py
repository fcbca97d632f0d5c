"""Resolve each (VM group, host type) pair to a concrete virtualization configuration.

Precedence: built-in defaults < the host type's `virtualization` < the VM group's `virtualization`. Each I/O class
(hardware.assignment.IO_CLASSES) defaults to the hypervisor's path for it (Hyper-V: VMBus, Xen PVHVM: netfront),
else to the class's own.
"""
from __future__ import annotations

from dataclasses import dataclass

from consolidate.hardware import catalog as cat
from consolidate.hardware import coremodel as cm
from consolidate.hardware.assignment import DEVICE_CLASSES, IO_CLASSES
from consolidate.scenario.model import HostType, VirtSpec, VmGroup
from consolidate.workload.profiles import profile_mmu

DEFAULT_HYPERVISOR = "kvm-qemu"


@dataclass(frozen=True)
class Resolved:
    """What one VM group runs with on one host type."""

    cpu: cat.Cpu
    hypervisor: cat.Hypervisor | None
    config: cm.VirtConfig
    paths: tuple[str, ...]  # I/O path per class of hardware.assignment.IO_CLASSES
    host_type: HostType

    def path(self, io_class: str) -> str:
        """The I/O path of one class ('net', 'disk')."""
        return self.paths[DEVICE_CLASSES.index(io_class)]


def _merge(*specs: VirtSpec | None) -> dict:
    out: dict = {"features": {}, "io": {}}
    for spec in specs:
        if spec is None:
            continue
        for k in ("hypervisor", "mode", "paging", "host_page", "guest_page", "working_set_pages", "nested_tlb"):
            v = getattr(spec, k)
            if v is not None:
                out[k] = v
        out["features"].update(spec.features)
        out["io"].update({k: v for k, v in spec.io.model_dump().items() if v is not None})
    return out


def resolve(group: VmGroup, host_type: HostType) -> Resolved:
    """The configuration of `group` on `host_type`; raises cm.ConfigError when the host's CPU (or the
    hypervisor) cannot provide what the group or host type asks for."""
    return resolve_specs(host_type, group.virtualization, group.profile)


def resolve_specs(host_type: HostType, spec: VirtSpec | None, profile: str = "generic") -> Resolved:
    """The configuration of VMs of workload `profile` with virtualization `spec` on `host_type`: the CPU at the
    host's own clock (`clock_ghz`, else the catalog part's), the profile's MMU character (working set, address
    spaces, bulk and INVLPG shares of its PTE writes, page size), the spec's choices over the host type's."""
    if host_type.cpu is None:
        raise cm.ConfigError(f"host type {host_type.name!r} names no cpu (expected one of: {', '.join(cat.cpus())})")
    m = _merge(host_type.virtualization, spec)
    cpu = cm.at_clock(cat.cpus()[host_type.cpu], host_type.clock_ghz)
    mode = m.get("mode", "hw")
    hv = None if mode == "native" else cat.hypervisors()[m.get("hypervisor", DEFAULT_HYPERVISOR)]
    mmu = dict(profile_mmu(profile))  # the spec's choices win over the profile's
    mmu.update({k: m[k] for k in ("guest_page", "working_set_pages") if k in m})
    extra = {k: m[k] for k in ("nested_tlb",) if k in m}  # refill pages without either: cm.REFILL_PAGES
    cfg = cm.VirtConfig(mode=mode, paging=m.get("paging"), host_page=m.get("host_page", "4k"), **mmu, **extra,
                        **m["features"])
    cm.effective(cpu, hv, cfg)  # raises ConfigError on a conflict
    return Resolved(cpu=cpu, hypervisor=hv, config=cfg,
                    paths=tuple(m["io"].get(c.name, (hv.io_defaults if hv else {}).get(c.name, c.default_path))
                                for c in IO_CLASSES), host_type=host_type)
