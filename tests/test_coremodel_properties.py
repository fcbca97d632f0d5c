"""Laws of the core model that must hold for every CPU, hypervisor and configuration (hypothesis)."""
from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from consolidate.hardware import catalog as cat, coremodel as cm, microbench as mb

CPUS = sorted(cat.cpus())
HW_HVS = sorted(n for n, h in cat.hypervisors().items() if "hw" in h.modes)
TOGGLES = ["vpid", "apicv", "posted_interrupts", "tpr_shadow", "ple", "preemption_timer", "vmcs_shadowing"]


def _all_costs(cpu, hv, cfg) -> dict[str, float]:
    """Every cost the model prices except page-walk length: guest events, microbenchmarks, I/O paths,
    world switch."""
    out = {f"event:{k}": v.cycles for k, v in cm.event_costs(cpu, hv, cfg).items()}
    out.update({f"bench:{b}": mb.predict(b, cpu, hv, cfg).cycles for b in mb.benchmarks()
                if not mb.benchmarks()[b].get("flushes_tlb")})
    for name, path in cat.io_paths().items():
        c = cm.io_cost(path, cpu, hv, cfg)
        out[f"io:{name}:guest"] = c.guest_cycles
        out[f"io:{name}:backend"] = c.backend_cycles
    out["world_switch"] = cm.world_switch_cycles(cpu, hv, cfg)
    return out


@settings(max_examples=60, deadline=None)
@given(cpu=st.sampled_from(CPUS), hv=st.sampled_from(HW_HVS), feature=st.sampled_from(TOGGLES + ["ept"]),
       ws=st.integers(1, 4096))
def test_enabling_a_feature_never_raises_a_cost(cpu, hv, feature, ws):
    c, h = cat.cpus()[cpu], cat.hypervisors()[hv]
    if feature == "ept":
        assume(c.has("ept") and h.uses.get("ept"))
        on, off = cm.VirtConfig(paging="ept", working_set_pages=ws), cm.VirtConfig(paging="shadow", working_set_pages=ws)
    else:
        assume(c.has(feature) and h.uses.get(feature))
        on, off = cm.VirtConfig(working_set_pages=ws), cm.VirtConfig(working_set_pages=ws, **{feature: False})
    with_f, without = _all_costs(c, h, on), _all_costs(c, h, off)
    if feature in ("ept", "vpid"):
        # nested paging and tagged TLBs remove exits and flushes, but the world switch still refills a TLB that
        # nested walks make dearer per entry: compare everything but the world switch's refill term
        with_f.pop("world_switch"), without.pop("world_switch")
    worse = {k: (without[k], v) for k, v in with_f.items() if v > without[k] + 1e-9}
    assert not worse, worse


def test_nested_walks_are_longer_than_native_as_published():
    # the price nested paging pays instead of exits (Bhargava et al. 2008): up to 24 references per miss
    c, h = cat.cpus()["intel-haswell"], cat.hypervisors()["kvm-qemu"]
    eff = cm.effective(c, h, cm.VirtConfig())
    assert cm.extra_walk_cycles(c, eff, cm.VirtConfig()) > 0
    assert cm.extra_walk_cycles(c, eff, cm.VirtConfig(host_page="2m")) < cm.extra_walk_cycles(c, eff, cm.VirtConfig())


@pytest.mark.parametrize("better,worse", [("vhost", "virtio"), ("virtio", "emulated"), ("sriov", "vhost"),
                                          ("passthrough", "vhost")])
def test_io_paths_cheaper_in_order(better, worse):
    for cpu in CPUS:
        for hv in HW_HVS:
            c, h = cat.cpus()[cpu], cat.hypervisors()[hv]
            a = cm.io_cost(cat.io_paths()[better], c, h, cm.VirtConfig())
            b = cm.io_cost(cat.io_paths()[worse], c, h, cm.VirtConfig())
            assert a.guest_cycles + a.backend_cycles < b.guest_cycles + b.backend_cycles, (cpu, hv, better, worse)
            # direct paths run at line rate less IOTLB-miss DMA delay; a software path can only match the wire
            assert a.cap_pps >= 0.98 * b.cap_pps


@settings(max_examples=40, deadline=None)
@given(cpu=st.sampled_from(CPUS), hv=st.sampled_from(HW_HVS), ghz=st.floats(0.5, 6.0))
def test_cycles_do_not_depend_on_frequency_and_time_scales_with_its_inverse(cpu, hv, ghz):
    c, h = cat.cpus()[cpu], cat.hypervisors()[hv]
    fast = dataclasses.replace(c, frequency_ghz=ghz)
    cfg = cm.VirtConfig()
    a, b = cm.exit_costs_cycles(c, h, cfg), cm.exit_costs_cycles(fast, h, cfg)
    assert a == b
    ea, eb = cm.event_costs(c, h, cfg), cm.event_costs(fast, h, cfg)
    assert {k: v.cycles for k, v in ea.items()} == {k: v.cycles for k, v in eb.items()}
    for r, cyc in a.items():
        assert cm.cycles_to_s(cyc, fast) * ghz == pytest.approx(cm.cycles_to_s(cyc, c) * c.frequency_ghz)
    # a backend-bound path's packet rate scales with the clock until the wire limits it
    path = cat.io_paths()["emulated"]
    base, scaled = cm.io_cost(path, c, h, cfg), cm.io_cost(path, fast, h, cfg)
    cpu_bound = c.frequency_ghz * 1e9 / base.backend_cycles
    wire = 10e9 / ((1500 + cm.ETHERNET_OVERHEAD_BYTES) * 8)
    assert scaled.cap_pps == pytest.approx(min(wire, cpu_bound * ghz / c.frequency_ghz))


def test_every_exit_reason_has_a_finite_positive_cost_everywhere():
    for cpu in CPUS:
        for hv in HW_HVS:
            for paging in ("shadow", None):
                costs = cm.exit_costs_cycles(cat.cpus()[cpu], cat.hypervisors()[hv], cm.VirtConfig(paging=paging))
                assert set(costs) == set(cat.exit_reasons())
                assert all(math.isfinite(v) and v > 0 for v in costs.values()), (cpu, hv)


def test_exit_list_is_the_complete_vtx_list_with_amd_counterparts():
    # the VT-x reasons of seeds/README.md (003), plus EPT violation and misconfiguration and the TPR-shadow exit
    # (SDM basic exit reason 43, "TPR below threshold")
    expected = {"tpr_below_threshold", "exception_nmi", "external_interrupt", "triple_fault", "init", "sipi", "smi", "interrupt_window",
                "task_switch", "cpuid", "smx", "hlt", "invd_wbinvd", "invlpg_invpcid", "io_instruction", "rdpmc",
                "rdtsc", "rsm", "vmcall", "vmx_instruction", "cr_access", "xcr_access", "dr_access", "msr_read",
                "msr_write", "monitor_mwait", "pause", "apic_access", "descriptor_table", "preemption_timer",
                "rdrand", "ept_violation", "ept_misconfig"}
    assert set(cat.exit_reasons()) == expected
    assert cm.amd_counterpart("ept_violation") == "VMEXIT_NPF"
    assert cm.amd_counterpart("preemption_timer") is None  # AMD-V has no VMX preemption timer


def test_native_mode_costs_nothing():
    c = cat.cpus()["intel-skylake-sp"]
    costs = cm.event_costs(c, None, cm.VirtConfig(mode="native"))
    assert all(v.cycles == 0 and not v.exits for v in costs.values())
    assert cm.world_switch_cycles(c, cat.hypervisors()["kvm-qemu"], cm.VirtConfig(mode="native")) == 0


def test_vpid_removes_the_flush_on_every_exit():
    c, h = cat.cpus()["intel-nehalem"], cat.hypervisors()["kvm-qemu"]
    on = cm.exit_cost_cycles("cpuid", c, h, cm.VirtConfig(working_set_pages=512))
    off = cm.exit_cost_cycles("cpuid", c, h, cm.VirtConfig(working_set_pages=512, vpid=False))
    eff = cm.effective(c, h, cm.VirtConfig())
    assert off - on == pytest.approx(min(cm.tlb_entries(c), 512) * cm.walk_cycles(c, eff, cm.VirtConfig()))


def test_type2_pays_a_host_world_switch_on_io_exits():
    c = cat.cpus()["intel-nehalem"]
    t1, t2 = cat.hypervisors()["vmware-esx-hw"], cat.hypervisors()["hosted-type2"]
    io = lambda h: cm.exit_cost_cycles("io_instruction", c, h, cm.VirtConfig(), user_space=True)  # noqa: E731
    assert io(t2) - io(t1) >= t2.type2_switch_cycles * cm.software_scale(c, t2)


def test_feature_missing_on_cpu_is_a_config_error():
    with pytest.raises(cm.ConfigError, match="ept requested but intel-merom"):
        cm.effective(cat.cpus()["intel-merom"], cat.hypervisors()["kvm-qemu"], cm.VirtConfig(paging="ept"))
    with pytest.raises(cm.ConfigError, match="npt requested but amd-k8"):
        cm.effective(cat.cpus()["amd-k8"], cat.hypervisors()["kvm-qemu"], cm.VirtConfig(paging="npt"))
    with pytest.raises(cm.ConfigError, match="does not run mode 'bt'"):
        cm.effective(cat.cpus()["intel-haswell"], cat.hypervisors()["kvm-qemu"], cm.VirtConfig(mode="bt"))
