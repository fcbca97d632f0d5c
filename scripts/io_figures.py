"""Print the interrupt and network-model figures of docs/io-and-migration.md ("Published against predicted"):
ELI against plain device assignment, SR-IOV host CPU per added VM, LV08's two-path shares.

    python scripts/io_figures.py
"""
from __future__ import annotations

import numpy as np

from consolidate.costmodel.config import resolve_specs
from consolidate.costmodel.interval import interval_overhead
from consolidate.costmodel.tables import PRICED_COLUMNS, TLB_COLUMN, build_tables
from consolidate.engine.flows import LV08_WEIGHT_S_BYTES, maxmin_ids
from consolidate.hardware import catalog as cat
from consolidate.hardware.assignment import IO_CLASSES
from consolidate.hardware.topology import Network, explicit
from consolidate.scenario.model import HostType, NicSpec, VirtSpec
from consolidate.workload.profiles import EVENT_COLUMNS, IO_COLUMNS, event_rates, io_rates, profile_table


def host(cpu: str, irq: float | None) -> HostType:
    return HostType(name="h", cores=16, mips_per_core=2930, memory_mb=1 << 20, power_idle_w=0, power_max_w=0,
                    cpu=cpu, network_bps=10e9, nics=[NicSpec(model="intel-82599", max_interrupts_per_s=irq)])


def eli_slowdown(features: dict) -> float:
    """A busy 1-vCPU network_appliance guest on a VF (Nehalem, KVM) at 150K interrupts/s: time per native work."""
    p = np.array([profile_table().index("network_appliance")])
    rates = event_rates(p, np.ones(1))
    ev = rates[:, [EVENT_COLUMNS.index(c) for c in PRICED_COLUMNS]]
    io = io_rates(p, np.ones(1), np.ones(1))
    pps = sum(io[:, IO_COLUMNS.index(c)] for c in IO_CLASSES[0].trace_columns)
    r = resolve_specs(host("intel-nehalem", 150_000),
                      VirtSpec(hypervisor="kvm-qemu", features=features, io={"net": "sriov"}), "network_appliance")
    t = build_tables([r])
    ov = interval_overhead(t, np.zeros(1, np.int64), np.ones(1), ev, rates[:, EVENT_COLUMNS.index(TLB_COLUMN)],
                           [pps, np.zeros(1)], np.zeros(1))
    return 1.0 + ov.overhead_mips[0] / t.cycles_to_mips[0] / t.hz[0]


def sriov_cpu_pct(n: int, hypervisor: str, irq: float | None, path: str = "sriov") -> float:
    """Host CPU (% of a core) of n VMs sharing 9.48 Gbit/s over VFs of one 82599, guests at CONFIG_HZ=250."""
    r = resolve_specs(host("intel-nehalem", irq), VirtSpec(hypervisor=hypervisor, io={"net": path}), "generic")
    t = build_tables([r])
    ev = np.zeros((n, len(PRICED_COLUMNS)))
    ev[:, PRICED_COLUMNS.index("timer_irqs_per_s")] = 250
    pps = np.full(n, 9.48e9 / (cat.packet_bytes() * 8) / n)
    ov = interval_overhead(t, np.zeros(n, np.int64), np.ones(n), ev, np.zeros(n), [pps, np.zeros(n)], np.zeros(n))
    return 100 * float((ov.overhead_mips + ov.backend_mips).sum() / t.cycles_to_mips[0] / t.hz[0])


def main() -> None:
    plain, eli = eli_slowdown({}), eli_slowdown({"eli": True})
    print(f"ELI vs plain device assignment, 150K interrupts/s: {plain / eli:.2f}x; ELI at {100 / eli:.1f}% of bare "
          f"metal (plain {100 / plain:.1f}%)")
    for hv, irq in (("xen-hvm", 8000), ("xen-hvm", None), ("kvm-qemu", 8000)):
        one, sixty = sriov_cpu_pct(1, hv, irq), sriov_cpu_pct(60, hv, irq)
        label = f"{irq:.0f}/s" if irq else "catalog 12000/s"
        print(f"SR-IOV host CPU per added VM ({hv}, moderation {label}): {(sixty - one) / 59:.2f}% of a core "
              f"(1 VM {one:.2f}%, 60 VMs {sixty:.1f}%)")
    one, sixty = sriov_cpu_pct(1, "kvm-qemu", 8000, "vhost"), sriov_cpu_pct(60, "kvm-qemu", 8000, "vhost")
    print(f"vhost host CPU per added VM (kvm-qemu): {(sixty - one) / 59:.3f}% of a core (1 VM {one:.1f}%)")
    net = Network(explicit([("h0", "s", 10e9, 1e-4), ("s", "h1", 1e9, 1e-4), ("h2", "a", 10e9, 1e-3),
                            ("a", "b", 10e9, 1e-3), ("b", "s", 10e9, 1e-3)]))
    ids = [net.link_ids(0, 1), net.link_ids(2, 1)]
    pen = np.array([net.latencies[i].sum() + (LV08_WEIGHT_S_BYTES * 8 / net.capacities[i]).sum() for i in ids])
    mm, lv = maxmin_ids(ids, net.capacities), maxmin_ids(ids, net.capacities, pen)
    print(f"two flows into one 1 Gbit/s link, 2 hops (0.2 ms) and 4 hops (3.1 ms): maxmin {mm[0] / 1e6:.0f}/"
          f"{mm[1] / 1e6:.0f} Mbit/s, lv08 {lv[0] / 1e6:.0f}/{lv[1] / 1e6:.0f} Mbit/s (penalties {pen[0] * 1e3:.2f}/"
          f"{pen[1] * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
