"""Interrupts of directly assigned NIC functions: their rate from the NIC's moderation and the packet rate, their
price from the core model (exits, posted interrupts, ELI), and the fixed per-VM costs that make SR-IOV's host CPU
grow with the VM count. Checked at the published points: ELI against plain device assignment (Gordon et al.,
ASPLOS 2012) and SR-IOV's CPU per added VM (Dong et al., HPCA 2010)."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.costmodel.config import resolve_specs
from consolidate.costmodel.interval import interval_overhead
from consolidate.costmodel.tables import PRICED_COLUMNS, TLB_COLUMN, build_tables, nic_irq_max
from consolidate.hardware import catalog as cat
from consolidate.hardware import coremodel as cm
from consolidate.hardware.assignment import IO_CLASSES
from consolidate.scenario.model import HostType, NicSpec, VirtSpec
from consolidate.workload.profiles import EVENT_COLUMNS, IO_COLUMNS, event_rates, io_rates, profile_table
from tests.conftest import TINY

LINE_PPS_948 = 9.48e9 / (cat.packet_bytes() * 8)  # Dong et al.'s 9.48 Gbit/s in 1500-byte packets


def _host(cpu: str, irq: float | None = None, nic: str = "intel-82599") -> HostType:
    return HostType(name="h", cores=16, mips_per_core=2930, memory_mb=1 << 20, power_idle_w=0, power_max_w=0,
                    cpu=cpu, network_bps=10e9, nics=[NicSpec(model=nic, max_interrupts_per_s=irq)])


def _overhead(host: HostType, spec: VirtSpec, pps: np.ndarray, *, profile: str = "generic", events=None,
              util=None):
    """interval_overhead for len(pps) VMs of one configuration on `host`, each asked `pps` network packets/s."""
    r = resolve_specs(host, spec, profile)
    t = build_tables([r])
    n = len(pps)
    ev = np.zeros((n, len(PRICED_COLUMNS))) if events is None else events
    ops = [pps, np.zeros(n)]
    ov = interval_overhead(t, np.zeros(n, np.int64), np.ones(n), ev, np.zeros(n), ops, np.zeros(n), util=util)
    return ov, t


def test_interrupt_rate_is_the_packet_rate_until_the_nic_moderation_caps_it():
    spec = VirtSpec(hypervisor="kvm-qemu", io={"net": "sriov"})
    pps = np.array([1_000.0, 11_999.0, 12_000.0, 50_000.0, 800_000.0])
    ov, _ = _overhead(_host("intel-nehalem"), spec, pps)
    # intel-82599's driver default (ixgbevf: adaptive moderation never below 12K interrupts/s per vector)
    assert cat.nics()["intel-82599"].max_interrupts_per_s == 12_000
    np.testing.assert_allclose(ov.interrupts_per_s, [1_000, 11_999, 12_000, 12_000, 12_000])
    # the host type's NIC overrides it (ethtool -C rx-usecs 125 -> 8,000/s)
    ov8, _ = _overhead(_host("intel-nehalem", irq=8_000), spec, pps)
    np.testing.assert_allclose(ov8.interrupts_per_s, [1_000, 8_000, 8_000, 8_000, 8_000])
    # each interrupt costs the core model's device interrupt: an external-interrupt exit, injection, an EOI exit
    cpu, hv = cat.cpus()["intel-nehalem"], cat.hypervisors()["kvm-qemu"]
    irq = cm.event_costs(cpu, hv, cm.VirtConfig())["device_irq"]
    reasons = list(cat.exit_reasons())
    ext = ov8.exits_per_s[:, reasons.index("external_interrupt")]
    np.testing.assert_allclose(ext, ov8.interrupts_per_s * irq.exits["external_interrupt"])
    # paravirtual paths keep their own batching: no NIC moderation applies to virtio's injected interrupts
    ovv, _ = _overhead(_host("intel-nehalem"), VirtSpec(hypervisor="kvm-qemu", io={"net": "vhost"}), pps)
    assert not ovv.interrupts_per_s.any()


def test_nic_moderation_comes_from_the_catalog_with_sources():
    for name, nic in cat.nics().items():
        assert nic.max_interrupts_per_s and nic.max_interrupts_per_s > 0, name
        assert "max_interrupts_per_s" in " ".join(nic.sources), name
    assert nic_irq_max(_host("intel-nehalem", nic="intel-x710")) == 20_000
    assert nic_irq_max(HostType(name="bare", cores=1, mips_per_core=1, memory_mb=1, power_idle_w=0,
                                power_max_w=0, cpu="intel-nehalem")) == np.inf
    assert "vf_housekeeping:mailbox_messages_per_s: no source" not in cat.missing_sources()


def _saturated_slowdown(features: dict) -> tuple[float, float]:
    """A 1-vCPU guest kept busy by network I/O on a directly assigned VF (Nehalem, KVM, the ELI paper's class of
    machine), taking 150K interrupts/s (ELI's published rate for an I/O-intensive guest): virtualized time per
    unit of native work, and its interrupt rate."""
    host = _host("intel-nehalem", irq=150_000)
    p = np.array([profile_table().index("network_appliance")])
    rates = event_rates(p, np.ones(1))
    ev = rates[:, [EVENT_COLUMNS.index(c) for c in PRICED_COLUMNS]]
    io = io_rates(p, np.ones(1), np.ones(1))
    pps = sum(io[:, IO_COLUMNS.index(c)] for c in IO_CLASSES[0].trace_columns)
    r = resolve_specs(host, VirtSpec(hypervisor="kvm-qemu", features=features, io={"net": "sriov"}),
                      "network_appliance")
    t = build_tables([r])
    tlb = rates[:, EVENT_COLUMNS.index(TLB_COLUMN)]
    ov = interval_overhead(t, np.zeros(1, np.int64), np.ones(1), ev, tlb, [pps, np.zeros(1)], np.zeros(1))
    return 1.0 + ov.overhead_mips[0] / t.cycles_to_mips[0] / t.hz[0], ov.interrupts_per_s[0]


def test_eli_against_plain_device_assignment_at_the_published_point():
    plain, irq_plain = _saturated_slowdown({})
    eli, irq_eli = _saturated_slowdown({"eli": True})
    assert irq_plain == irq_eli == 150_000
    # Gordon et al.: ELI improves throughput 1.3x-1.6x and reaches 97%-100% of bare metal
    assert 1.3 <= plain / eli <= 1.6
    assert 0.97 <= 1.0 / eli <= 1.0
    # without ELI, the interrupts alone would cost a third of the vCPU: 150K x one device interrupt's cycles
    cpu, hv = cat.cpus()["intel-nehalem"], cat.hypervisors()["kvm-qemu"]
    one = cm.assigned_irq_cost(cpu, hv, cm.VirtConfig()).cycles
    assert plain - eli == pytest.approx(150_000 * one / (cpu.frequency_ghz * 1e9), rel=0.05)


def test_eli_and_posted_interrupts_have_their_own_costs():
    cpu, hv = cat.cpus()["intel-westmere"], cat.hypervisors()["xen-hvm"]  # no preemption timer: the tick exits
    plain, eli = cm.VirtConfig(), cm.VirtConfig(eli=True)
    assert cm.assigned_irq_cost(cpu, hv, eli).cycles == 0.0
    assert cm.assigned_irq_cost(cpu, hv, plain).exits == {"external_interrupt": 1.0, "apic_access": 1.0}
    # ELI's price: every other interrupt meets a non-present shadow-IDT entry (the #NP exception's handler on top)
    tick = {c: cm.event_costs(cpu, hv, c)["timer_irq"].cycles for c in (plain, eli)}
    assert tick[eli] - tick[plain] == pytest.approx(cm.eli_np_cycles(cpu, hv)) and cm.eli_np_cycles(cpu, hv) > 0
    # ELI is a hardware-mode technique, and moot where posted interrupts deliver already
    assert not cm.effective(cpu, cat.hypervisors()["xen-pv"], cm.VirtConfig(mode="pv", eli=True)).on("eli")
    hsw, kvm = cat.cpus()["intel-haswell"], cat.hypervisors()["kvm-qemu"]
    assert not cm.eli_in_force(cm.effective(hsw, kvm, eli))
    # posted interrupts: nothing on the running vCPU; the host wakes a blocked one (its own cost)
    assert cm.assigned_irq_cost(hsw, kvm, plain).cycles == 0.0
    wake = cm.posted_wakeup_cycles(hsw, kvm, plain)
    assert wake > 0 and cm.posted_wakeup_cycles(cpu, hv, plain) == 0.0
    spec = VirtSpec(hypervisor="kvm-qemu", io={"net": "sriov"})
    pps = np.full(2, 50_000.0)
    ov, t = _overhead(_host("intel-haswell", irq=10_000), spec, pps, util=np.array([1.0, 0.25]))
    assert not ov.exits_per_s.any()  # no exit for either VM
    host_cycles = ov.backend_mips / t.cycles_to_mips[0]
    fixed = cat.vf_housekeeping().mailbox_messages_per_s * cat.vf_housekeeping().host_cycles_per_message
    np.testing.assert_allclose(host_cycles, [fixed, fixed + 10_000 * 0.75 * wake])


def _sriov_host_cpu_pct(n: int, hypervisor: str = "xen-hvm", path: str = "sriov") -> float:
    """Host CPU (% of one core) of n VMs sharing Dong et al.'s 9.48 Gbit/s through VFs of one 10 GbE 82599 whose
    driver moderates at ixgbe's bulk rate of the time (8,000 interrupts/s), each guest ticking at CONFIG_HZ=250."""
    ev = np.zeros((n, len(PRICED_COLUMNS)))
    ev[:, PRICED_COLUMNS.index("timer_irqs_per_s")] = 250
    ov, t = _overhead(_host("intel-nehalem", irq=8_000), VirtSpec(hypervisor=hypervisor, io={"net": path}),
                      np.full(n, LINE_PPS_948 / n), events=ev)
    return 100 * float((ov.overhead_mips + ov.backend_mips).sum() / t.cycles_to_mips[0] / t.hz[0])


def test_sriov_cpu_grows_with_the_vm_count_as_dong_et_al_measured():
    counts = [1, 10, 30, 60]
    cpu = [_sriov_host_cpu_pct(n) for n in counts]
    slope = (cpu[-1] - cpu[0]) / (counts[-1] - counts[0])
    # published: about 1.76% more CPU per VM up to 60 VMs (Xen, 10 GbE); predicted within 50% (their adaptive
    # coalescing and EOI acceleration are not modelled: they lower the per-VM figure)
    assert 1.76 / 1.5 <= slope <= 1.76 * 1.5
    # and it grows linearly: the same traffic split over more VFs, each interrupting at its moderation limit
    per_vm = [c / n for c, n in zip(cpu, counts)]
    assert max(per_vm) / min(per_vm) < 1.05
    # a paravirtual backend does not pay per VM: the same traffic costs about the same however it is split
    vhost = [_sriov_host_cpu_pct(n, "kvm-qemu", "vhost") for n in (1, 60)]
    assert (vhost[1] - vhost[0]) / 59 < 0.1 * slope


def test_sriov_host_cpu_per_vm_in_a_run(tmp_path):
    """End to end: a run's overhead grows with the number of SR-IOV VMs sharing the same traffic."""
    def run(n: int) -> float:
        pps = LINE_PPS_948 / n
        trace = pd.DataFrame({"time_s": [0, 300], "cpu_util": [0.3, 0.3], "net_rx_pps": [pps] * 2,
                              "net_tx_pps": [0.0] * 2})
        trace.to_csv(tmp_path / f"t{n}.csv", index=False)
        sc = copy.deepcopy(TINY)
        host = {"name": "srv", "cores": 64, "mips_per_core": 2930, "memory_mb": 1048576, "network_bps": 10e9,
                "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-nehalem",
                "nics": [{"model": "intel-82599", "count": 1, "max_interrupts_per_s": 8000}],
                "virtualization": {"hypervisor": "xen-hvm"}}
        sc |= {"host_types": [host], "hosts": [{"type": "srv", "count": 1}], "duration_s": 600, "interval_s": 300,
               "overhead": {"enabled": True}, "placement": "first-fit",
               "vm_types": [{"name": "v", "vcpus": 1, "mips_per_vcpu": 500, "memory_mb": 512}],
               "vms": [{"name": "net", "count": n, "type": "v",
                        "trace": {"native": str(tmp_path / f"t{n}.csv"), "repeat": True},
                        "virtualization": {"io": {"net": "sriov"}}}]}
        res = consolidate.run(sc)
        return float(res.summary["virt_cpu_mips_h"].iloc[0])

    small, large = run(4), run(40)
    assert large > 5 * small
