"""The trace-driven overhead model: laws that must hold exactly, agreement with the event-by-event replay,
and the direction of the shipped what-if scenarios."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.costmodel.config import resolve
from consolidate.costmodel.eventmode import replay
from consolidate.costmodel.interval import interval_overhead
from consolidate.costmodel.tables import PRICED_COLUMNS, REASONS, build_tables
from consolidate.errors import ScenarioError
from consolidate.hardware.catalog import scenario_host_types as host_types_of
from consolidate.workload.profiles import EVENT_COLUMNS, event_rates, profile_table
from tests.conftest import REPO, TINY

PENRYN_HOST = {"name": "penryn-box", "cores": 4, "mips_per_core": 3000, "memory_mb": 16384,
               "power_idle_w": 100, "power_max_w": 200, "cpu": "intel-penryn"}
ICX_HOST = {"name": "icx-box", "cores": 8, "mips_per_core": 2300, "memory_mb": 65536, "network_bps": 25e9,
            "power_idle_w": 90, "power_max_w": 300, "cpu": "intel-icelake-sp", "nics": [{"model": "intel-x710"}]}


def _scenario(host: dict, **vm_extra) -> dict:
    sc = copy.deepcopy(TINY)
    sc["host_types"] = [host]
    sc["hosts"] = [{"type": host["name"], "count": 2}]
    sc["vm_types"] = [{"name": "v2", "vcpus": 2, "mips_per_vcpu": 2000, "memory_mb": 2048}]
    sc["vms"] = [{"name": "g", "count": 3, "type": "v2", "profile": "web",
                  "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.2, "noise_std": 0.05}}, **vm_extra}]
    sc["overhead"] = {"enabled": True}
    return sc


def test_native_mode_has_exactly_zero_overhead():
    res = consolidate.run(_scenario(ICX_HOST, virtualization={"mode": "native"}))
    vi = res.vm_intervals
    assert (vi.cpu_overhead_mips == 0).all() and (vi.cpu_backend_mips == 0).all()
    assert (vi.exits_per_s == 0).all() and (vi.tlb_flushes_per_s == 0).all()
    assert (vi.cpu_effective_mips == vi.cpu_demand_mips).all()
    assert res.summary.overhead_pct_mean.iloc[0] == 0


def test_served_plus_unserved_is_the_effective_demand():
    sc = _scenario(PENRYN_HOST)
    sc["vms"][0]["count"] = 8  # 16 vCPUs on 2 x 4 cores: overloaded, world switches, unserved demand
    sc["vms"][0]["trace"]["synthetic"]["mean"] = 0.8
    sc["cpu_overcommit"] = 2.0
    vi = consolidate.run(sc).vm_intervals
    np.testing.assert_allclose(vi.cpu_served_mips + vi.cpu_unserved_mips, vi.cpu_effective_mips, rtol=1e-5)
    np.testing.assert_allclose(vi.cpu_demand_mips + vi.cpu_overhead_mips + vi.cpu_backend_mips,
                               vi.cpu_effective_mips, rtol=1e-5)
    assert vi.cpu_unserved_mips.sum() > 0 and vi.world_switches_per_s.sum() > 0
    parts = vi[[c for c in vi.columns if c.startswith("overhead_") and c.endswith("_mips")]].sum(axis=1)
    np.testing.assert_allclose(parts, vi.cpu_overhead_mips + vi.cpu_backend_mips, rtol=1e-4)


def test_doubling_an_event_rate_doubles_its_exits(tmp_path):
    def run(rate):
        t = np.arange(12) * 300
        pd.DataFrame({"time_s": t, "cpu_util": 0.5, "ctx_switches_per_s": rate}).to_csv(tmp_path / "t.csv", index=False)
        sc = _scenario(PENRYN_HOST)
        sc["vms"][0]["trace"] = {"native": "t.csv"}
        return consolidate.load_scenario(sc, base_dir=tmp_path)

    one, two = consolidate.run(run(1000.0)).vm_intervals, consolidate.run(run(2000.0)).vm_intervals
    # on Penryn (shadow paging) each guest CR3 write is one CR-access exit: 1000/s per vCPU x 2 vCPUs
    assert (one.exits_per_s_cr_access == 2000).all()
    assert (two.exits_per_s_cr_access == 2 * one.exits_per_s_cr_access).all()
    others = [c for c in one.columns if c.startswith("exits_per_s_") and c != "exits_per_s_cr_access"]
    pd.testing.assert_frame_equal(one[others], two[others])


def test_profiles_fill_what_a_trace_lacks():
    pt = profile_table()
    rates = event_rates(np.array([pt.index("web")]), np.array([0.5]))[0]
    timer = rates[EVENT_COLUMNS.index("timer_irqs_per_s")]
    assert timer == pytest.approx(10 + 240 * 0.5)  # CONFIG_HZ=250 when busy, tickless when idle
    web = np.array([pt.index("web")] * 3)
    halts = event_rates(web, np.array([0.0, 0.5, 1.0]))[:, EVENT_COLUMNS.index("halts_per_s")]
    assert halts.tolist() == [0.0, 8000 * 0.25, 0.0]  # per_busy_idle * u(1-u): none when never or always busy


@pytest.mark.parametrize("host,virt", [(PENRYN_HOST, {}), (ICX_HOST, {}), (ICX_HOST, {"io": {"net": "emulated"}}),
                                       (ICX_HOST, {"features": {"apicv": False, "posted_interrupts": False}})])
def test_per_interval_model_agrees_with_event_by_event_replay(host, virt):
    sc = consolidate.load_scenario(_scenario(host, virtualization=virt or None) if virt else _scenario(host))
    r = resolve(sc.vms[0], host_types_of(sc)[host["name"]])
    t = build_tables([r])
    rng = np.random.default_rng(0)
    pt = profile_table()
    for _ in range(5):
        util = rng.uniform(0.05, 0.9)
        per_vcpu = event_rates(np.array([pt.index("web")]), np.array([util]))[0]
        counts = {c: int(round(per_vcpu[EVENT_COLUMNS.index(c)] * 2)) for c in PRICED_COLUMNS}  # 1 s, 2 vCPUs
        misses, packets, switches = int(rng.integers(0, 20000)), 16 * int(rng.integers(0, 400)), int(rng.integers(0, 50))
        ev = np.array([[counts[c] / 2 for c in PRICED_COLUMNS]])
        ov = interval_overhead(t, np.array([0]), np.array([2.0]), ev, np.array([misses / 2]),
                               [np.array([float(packets)]), np.array([0.0])], np.array([float(switches)]))
        rate_cycles = ov.overhead_mips[0] / t.cycles_to_mips[0]
        rep = replay(r, counts, tlb_misses=misses, packets=packets, world_switches=switches)
        assert rep.guest_cycles == pytest.approx(rate_cycles, rel=0.01)
        assert rep.backend_cycles == pytest.approx(ov.backend_mips[0] / t.cycles_to_mips[0], rel=0.01)
        exits = dict(zip(REASONS, ov.exits_per_s[0]))
        for reason, n in rep.exits.items():
            assert n == pytest.approx(exits[reason], rel=0.01, abs=1)


def test_feature_the_host_lacks_names_group_and_host_type():
    sc = _scenario(PENRYN_HOST, virtualization={"paging": "ept"})
    with pytest.raises(ScenarioError) as exc:
        consolidate.load_scenario(sc)
    assert [str(p) for p in exc.value.problems] == [
        "<dict>: vms.0.virtualization: VM group 'g' on host type 'penryn-box' (cpu intel-penryn): ept requested "
        "but intel-penryn (Core 2 (Penryn/Harpertown)) lacks it (expected paging: shadow)"]


def test_emulated_nic_caps_throughput_and_records_unserved_io():
    sc = _scenario(ICX_HOST, virtualization={"io": {"net": "emulated"}})
    sc["vms"][0]["profile"] = "network_appliance"
    vi = consolidate.run(sc).vm_intervals
    cap = vi.net_pps_served.max()  # what two vCPUs can push through e1000 emulation on this host
    assert 150_000 < cap < vi.net_pps_demand.max()
    over = vi.net_pps_demand > cap
    assert over.any() and (vi.net_pps_unserved[over] > 0).all() and (vi.net_pps_unserved[~over] == 0).all()
    np.testing.assert_allclose(vi.net_pps_served + vi.net_pps_unserved, vi.net_pps_demand, rtol=1e-5)
    sc["vms"][0]["virtualization"] = {"io": {"net": "sriov"}}
    assert (consolidate.run(sc).vm_intervals.net_pps_unserved == 0).all()


def _summary(name: str) -> pd.Series:
    return consolidate.run(REPO / "scenarios" / f"{name}.yaml").summary.iloc[0]


def test_whatif_cpu_generations_move_the_right_way():
    p, n, s = (_summary(f"whatif-cpu-{c}") for c in ("penryn", "nehalem", "sapphirerapids"))
    assert p.overhead_pct_mean > n.overhead_pct_mean > s.overhead_pct_mean
    assert p.hosts_active_mean >= n.hosts_active_mean >= s.hosts_active_mean
    assert p.hosts_active_mean > s.hosts_active_mean
    assert p.energy_kwh > n.energy_kwh > s.energy_kwh
    assert p.tlb_flushes_per_s > 0 and n.tlb_flushes_per_s == 0  # VPID from Nehalem on


def test_whatif_network_paths_move_the_right_way():
    e, v, h, s = (_summary(f"whatif-net-{p}") for p in ("emulated", "virtio", "vhost", "sriov"))
    host_cpu = [x.overhead_mips_h + x.backend_mips_h for x in (e, v, h, s)]
    assert host_cpu == sorted(host_cpu, reverse=True)  # less host CPU per packet from emulated to SR-IOV
    assert e.hosts_active_mean >= v.hosts_active_mean >= h.hosts_active_mean >= s.hosts_active_mean
    assert e.energy_kwh > v.energy_kwh > h.energy_kwh > s.energy_kwh
    assert e.net_pps_unserved_fraction > 0 == s.net_pps_unserved_fraction
