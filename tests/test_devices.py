"""Directly assigned devices: VF pools and passthrough devices honoured by placement and consolidation;
VMs holding one are pinned."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import consolidate
from consolidate.errors import PlacementError
from tests.conftest import TINY


def _scenario(n_vms: int, nics: list, iommu: bool = True, net: str = "sriov", hosts: int = 3, policy=None) -> dict:
    sc = copy.deepcopy(TINY)
    sc["host_types"] = [{"name": "srv", "cores": 16, "mips_per_core": 2500, "memory_mb": 262144,
                         "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-skylake-sp", "iommu": iommu,
                         "nics": nics}]
    sc["hosts"] = [{"type": "srv", "count": hosts}]
    sc["vm_types"] = [{"name": "v", "vcpus": 1, "mips_per_vcpu": 500, "memory_mb": 1024}]  # small: VFs bind first
    sc["vms"] = [{"name": "direct", "count": n_vms, "type": "v", "profile": "network_appliance",
                  "trace": {"synthetic": {"mean": 0.3, "amplitude": 0.25, "period_s": 3600, "noise_std": 0.1}},
                  "virtualization": {"io": {"net": net}}},
                 {"name": "plain", "count": 6, "type": "v",
                  "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.3, "period_s": 3600, "noise_std": 0.1}}}]
    sc["overhead"] = {"enabled": True}
    sc["duration_s"] = 7200
    if policy:
        sc["consolidation"] = {"policy": policy}
    return sc


def _per_host(res, group):
    vi = res.vm_intervals.merge(res.vms[["vm", "group"]], on="vm")
    return vi[vi.group == group].groupby(["time_s", "host"]).size()


def test_vf_pool_limits_placement():
    # an X710 has 4 ports x 32 VFs = 128; hosts have one each -> 3 x 128 VFs; 200 VMs spread over >= 2 hosts
    res = consolidate.run(_scenario(200, [{"model": "intel-x710"}]))
    per_host = _per_host(res, "direct")
    assert per_host.max() == 128  # the pool binds (CPU and memory would allow more)
    assert res.summary.vms_rejected.iloc[0] == 0


def test_more_vfs_than_exist_is_an_error_or_a_rejection():
    sc = _scenario(10, [{"model": "intel-x540"}], hosts=0)
    sc["hosts"] = [{"type": "srv", "count": 1}]
    sc["vms"][0]["count"] = 70  # an X540 has 2 ports x 32 VFs = 64
    with pytest.raises(PlacementError) as exc:
        consolidate.run(sc)
    assert "needs an SR-IOV VF; the hosts have 64 for 70 such VMs" in str(exc.value)
    sc["on_unplaceable"] = "reject"
    s = consolidate.run(sc).summary.iloc[0]
    assert s.vms_rejected == 6


def test_passthrough_needs_an_iommu_and_a_free_device():
    with pytest.raises(PlacementError, match="needs a passthrough NIC port; the hosts have 0 for 2 such VMs"):
        consolidate.run(_scenario(2, [{"model": "intel-x710"}], iommu=False, net="passthrough"))
    res = consolidate.run(_scenario(12, [{"model": "intel-x710"}], net="passthrough"))  # 4 ports per host
    assert (_per_host(res, "direct") <= 4).all()


@settings(max_examples=6, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 1000))
def test_consolidation_never_oversubscribes_vfs_and_never_moves_a_pinned_vm(n, seed):
    sc = _scenario(n, [{"model": "intel-x540"}], hosts=4, policy="thr-mmt-0.8")
    sc["seed"] = seed
    res = consolidate.run(sc)
    assert (_per_host(res, "direct") <= 64).all()
    direct = set(res.vms.loc[res.vms.group == "direct", "vm"])
    assert not direct & set(res.migrations.vm)  # pinned: never migrated
    moved = res.vms[res.vms.group == "direct"]
    assert (moved.host == moved.host_at_end).all()


def _drain_scenario(policy=None, pinned_only=False):
    sc = _scenario(0 if not pinned_only else 4, [{"model": "intel-x710"}], hosts=3, policy=policy)
    if pinned_only:
        sc["vms"] = sc["vms"][:1]
    sc["maintenance"] = [{"at_s": 1800, "hosts": [0]}]
    return sc


def test_drain_empties_the_host_and_reports_the_evacuation():
    res = consolidate.run(_drain_scenario())
    m, s = res.maintenance, res.summary.iloc[0]
    on_host0 = set(res.vms.loc[res.vms.host == 0, "vm"])
    assert set(m.vm) == on_host0 and (m.outcome == "moved").all()
    assert s.drains == 1 and s.drain_vms_stuck == 0 and s.drain_vms_moved == len(on_host0)
    assert s.drain_hosts_not_emptied == 0
    assert s.drain_evacuation_s_max == pytest.approx((m.end_s - 1800).max())
    late = res.vm_intervals[res.vm_intervals.time_s >= 2100]
    assert (late.host != 0).all()  # nothing left on, or sent to, the drained host
    hi = res.host_intervals
    assert (hi[(hi.host == 0) & (hi.time_s >= 2100)].state == "off").all()


def test_drain_with_only_pinned_vms_reports_them_all_stuck():
    res = consolidate.run(_drain_scenario(pinned_only=True))
    m = res.maintenance
    assert len(m) == 4 and (m.outcome == "stuck").all()
    assert set(m.reason) == {"pinned: a directly assigned device"}
    assert res.migrations.empty
    assert res.summary.drain_hosts_not_emptied.iloc[0] == 1


def test_bad_drains_are_scenario_errors():
    from consolidate.errors import ScenarioError

    sc = _drain_scenario()
    sc["maintenance"] = [{"at_s": 99999, "hosts": [7]}, {"at_s": 0, "host_type": "nope"}, {"at_s": 0, "rack": 3}]
    with pytest.raises(ScenarioError) as exc:
        consolidate.load_scenario(sc)
    assert [str(p) for p in exc.value.problems] == [
        "<dict>: maintenance.0.at_s: after the run ends (got 99999, expected < duration_s 7200)",
        "<dict>: maintenance.0.hosts: no such host (got 7, expected 0..2)",
        "<dict>: maintenance.1.host_type: no hosts of this type (got 'nope', expected one of: srv)",
        "<dict>: maintenance.2.rack: no such rack (got 3, expected 0..0 with network.hosts_per_rack 40)",
    ]


def test_cold_migration_keeps_the_nic_model_and_pays_its_downtime():
    sc = _scenario(3, [{"model": "intel-x710"}], hosts=1)
    sc["host_types"].append({**sc["host_types"][0], "name": "srv-xl", "nics": [{"model": "intel-xl710"}]})
    sc["hosts"] = [{"type": "srv", "count": 2}, {"type": "srv-xl", "count": 2}]  # hosts 0, 1: X710; 2, 3: XL710
    sc["vms"] = sc["vms"][:1]
    sc["vms"][0]["migration_policy"] = "cold"
    sc["migration"] = {"cold_boot_s": 60}
    sc["maintenance"] = [{"at_s": 1800, "hosts": [0]}]
    res = consolidate.run(sc)
    m = res.migrations
    assert len(m) == 3 and (m.destination == 1).all()  # the other X710 host, never an XL710 one
    # 1024 MB over half of 1 Gbit/s, plus the boot: the VM is down the whole time
    expected = 1024 * 2 ** 20 * 8 / 0.5e9 + 60
    assert m.downtime_s.to_numpy() == pytest.approx([expected] * 3)
    assert (m.end_s - m.start_s).to_numpy() == pytest.approx([expected] * 3)
    vi = res.vm_intervals[res.vm_intervals.time_s == 1800]
    assert vi.cpu_migration_loss_mips.sum() > 0
    sc["hosts"] = [{"type": "srv", "count": 1}, {"type": "srv-xl", "count": 3}]  # no other X710 host
    m = consolidate.run(sc).maintenance
    assert (m.outcome == "stuck").all() and set(m.reason) == {"no host with room and a free VF of its NIC model"}


def _failover_scenario(hosts: int = 2, vfs_per_port: int = 1) -> dict:
    # an 82599 has 2 ports: with one VF enabled per port a host has 2 VFs
    sc = _scenario(1, [{"model": "intel-82599", "vfs_per_port": vfs_per_port}], hosts=hosts)
    sc["vms"] = sc["vms"][:1]
    sc["vms"][0]["migration_policy"] = "failover"
    sc["migration"] = {"failover_gap_s": 1.0}
    sc["maintenance"] = [{"at_s": 1800, "hosts": [0]}]
    return sc


def test_failover_vm_pays_the_paravirtual_cost_exactly_during_its_window():
    from consolidate import api

    sc_dict = _failover_scenario()
    res = consolidate.run(sc_dict)
    m, s = res.migrations, res.summary.iloc[0]
    # the live migration: 1024 MiB over half of 1 Gbit/s; the VF is unplugged at its start and, the destination
    # having a free VF, plugged back at its end: two service gaps of 1 s
    window = 1024 * 2 ** 20 * 8 / 0.5e9
    assert len(m) == 1 and (m.source.iloc[0], m.destination.iloc[0]) == (0, 1)
    assert m.end_s.iloc[0] - m.start_s.iloc[0] == pytest.approx(window)
    assert m.service_gap_s.iloc[0] == pytest.approx(2.0)
    assert s.failover_paravirtual_s_total == pytest.approx(window)
    assert s.failover_replugs == 1 and s.failover_waiting_at_end == 0
    assert s.failover_service_gap_s_total == pytest.approx(2.0)
    # the cost model, asked directly: the VM's overhead with its VF and with its paravirtual NIC
    sc = api.load_scenario(sc_dict)
    wl = api.build_workload(sc)
    hosts = api.HostTable.from_scenario(sc)
    om = api.OverheadModel(sc, wl, hosts.types)
    vi = res.vm_intervals.set_index("time_s")
    k_mig = int(1800 // sc.interval_s)
    pv = np.array([True])
    for k in range(sc.n_intervals):
        util = wl.cpu_util[k].astype(np.float64)
        on = np.array([0 if k <= k_mig else 1])
        vf = om.at(k, util, on, hosts.host_type, hosts.cores)
        para = om.at(k, util, on, hosts.host_type, hosts.cores, paravirtual=pv)
        got = vi.cpu_overhead_mips.loc[k * sc.interval_s] + vi.cpu_backend_mips.loc[k * sc.interval_s]
        full_vf = vf.overhead_mips[0] + vf.backend_mips[0]
        full_pv = para.overhead_mips[0] + para.backend_mips[0]
        share = window / sc.interval_s if k == k_mig else 0.0
        assert got == pytest.approx(full_vf + share * (full_pv - full_vf), rel=1e-5)
    assert full_pv > 1.5 * full_vf  # the paravirtual NIC costs the host real CPU: the blend is visible


def test_failover_vm_waits_paravirtual_where_no_vf_is_free():
    # four failover VMs on hosts of 2 VFs: two per host; host 0's two land on host 1, whose VFs its own two hold
    sc = _failover_scenario()
    sc["vms"][0]["count"] = 4
    res = consolidate.run(sc)
    s, m = res.summary.iloc[0], res.migrations
    assert len(m) == 2 and (m.destination == 1).all()
    assert m.service_gap_s.tolist() == pytest.approx([1.0, 1.0])  # unplugged, never re-plugged
    assert s.failover_waiting_at_end == 2 and s.failover_replugs == 0
    end = sc["duration_s"]
    assert s.failover_paravirtual_s_total == pytest.approx(float((end - m.start_s).sum()))


def test_failover_state_gives_the_vf_back_when_one_frees():
    from consolidate.engine.failover import Failover

    # VMs 0, 1: failover; VM 2: a pinned SR-IOV VM beside VM 0. Host 0 has 2 VFs, host 1 one.
    fo = np.array([True, True, False])
    device = np.array([True, True, True])
    vm_host = np.array([0, 1, 0])
    vm_dest = np.full(3, -1)
    f = Failover(fo, device, vm_host, np.array([2, 1]), gap_s=0.5)
    assert f.unplug(0, 100.0) == 0.5  # VM 0 leaves host 0 for host 1
    vm_host[0] = 1
    assert f.plug(0, 1, 110.0, vm_host, vm_dest) == 0.0  # host 1's VF is held by VM 1: stays paravirtual
    f.replug_waiting(400.0, vm_host, vm_dest)
    assert not f.attached[0]
    assert f.unplug(1, 500.0) == 0.5  # VM 1 starts to leave: its VF is free from now on
    vm_dest[1] = 0
    f.replug_waiting(600.0, vm_host, vm_dest)
    assert f.attached[0] and f.replugs == 1
    share, gap = f.interval(300.0, 600.0)
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(100 / 300)
    assert gap.tolist() == pytest.approx([0.0, 0.5, 0.0])
    share, gap = f.interval(600.0, 900.0)
    assert share[0] == pytest.approx(0.0) and gap[0] == pytest.approx(0.5)  # the re-plug's gap
    assert f.paravirtual_s_total == pytest.approx(500.0)


def test_failover_needs_an_sriov_vm_and_vfs_within_the_nic():
    from consolidate.errors import ScenarioError

    sc = _failover_scenario()
    sc["vms"][0]["virtualization"] = {"io": {"net": "virtio"}}
    with pytest.raises(ScenarioError, match=r"migration_policy failover needs virtualization.io.net sriov"):
        consolidate.load_scenario(sc)
    sc = _failover_scenario(vfs_per_port=33)
    with pytest.raises(ScenarioError, match=r"host_types.0.nics.0.vfs_per_port: more VFs than the NIC has "
                                            r"\(got 33, expected at most 32 for intel-82599\)"):
        consolidate.load_scenario(sc)


@settings(max_examples=6, deadline=None)
@given(n=st.integers(3, 8), seed=st.integers(0, 1000))
def test_failover_never_holds_more_vfs_than_a_host_has(n, seed):
    from consolidate import api

    # 4 hosts of 2 VFs (8 in all, one per VM at the start), failover VMs consolidated for two hours: a VM gets
    # a VF back only when one is free, checked every 5 s
    sc_dict = _failover_scenario(hosts=4)
    sc_dict["vms"][0]["count"] = n
    sc_dict["vms"][0]["trace"]["synthetic"]["noise_std"] = 0.3
    sc_dict["consolidation"] = {"policy": "thr-mmt-0.6"}
    sc_dict["seed"] = seed
    sc = api.load_scenario(sc_dict)
    wl = api.build_workload(sc)
    hosts = api.HostTable.from_scenario(sc)
    om = api.OverheadModel(sc, wl, hosts.types)
    dc = api.Datacenter(sc, wl, hosts, api.initial_placement(sc, wl, hosts, om), om=om)
    worst = []

    def check():
        while True:
            held = dc.state.failover.vfs_held(dc.state.vm_host, dc.state.vm_dest)
            worst.append(float((held - hosts.vf_capacity).max()))
            yield dc.env.timeout(5)

    dc.env.process(check())
    rec = dc.run()
    assert max(worst) <= 0
    assert len(rec.migrations) > 0  # the property was exercised by real moves


def test_drain_impact_is_the_difference_to_the_same_run_without_drains(tmp_path):
    from consolidate.report.html import write_report

    sc = _drain_scenario(pinned_only=True)
    res = consolidate.run(sc)
    s = res.summary.iloc[0]
    base = consolidate.run({**sc, "maintenance": []}).summary.iloc[0]
    assert "drain_impact_energy_kwh" not in base.index  # nothing to compare without drains
    assert s.drain_impact_energy_kwh == pytest.approx(s.energy_kwh - base.energy_kwh)
    assert s.drain_impact_sla_unserved_fraction == pytest.approx(s.sla_unserved_fraction - base.sla_unserved_fraction)
    off = consolidate.run({**sc, "maintenance_baseline": False}).summary
    assert not [c for c in off.columns if c.startswith("drain_impact_")]
    page = write_report(res, tmp_path).read_text()
    assert "<h2>Maintenance</h2>" in page and "pinned: a directly assigned device" in page
    assert "Cost of the drains (with minus without, same seed)" in page


def test_failover_vm_keeps_its_nic_model():
    sc = _failover_scenario()
    sc["host_types"].append({**sc["host_types"][0], "name": "srv-xl", "nics": [{"model": "intel-xl710"}]})
    sc["hosts"] = [{"type": "srv", "count": 2}, {"type": "srv-xl", "count": 2}]  # 0, 1: 82599; 2, 3: XL710
    res = consolidate.run(sc)
    assert res.migrations.destination.tolist() == [1]  # the other 82599 host, though XL710 hosts are empty
    sc["hosts"] = [{"type": "srv", "count": 1}, {"type": "srv-xl", "count": 3}]
    m = consolidate.run(sc).maintenance
    assert (m.outcome == "stuck").all() and set(m.reason) == {"no host with room and its NIC model"}


def test_failover_vm_keeps_its_vf_while_its_migration_waits_for_a_slot():
    sc = _failover_scenario()
    sc["vms"][0]["count"] = 2  # both on host 0 (2 VFs); host 1 has 2 free VFs
    sc["migration"]["max_concurrent_per_host"] = 1
    res = consolidate.run(sc)
    m, s = res.migrations.sort_values("start_s"), res.summary.iloc[0]
    window = 1024 * 2 ** 20 * 8 / 0.5e9  # MiB over half of 1 Gbit/s
    assert m.start_s.tolist() == pytest.approx([1800, 1800 + window])  # one at a time
    assert m.queued_s.tolist() == pytest.approx([0, window])
    # each VM is paravirtual only for its own transfer, not while it waits
    assert s.failover_paravirtual_s_total == pytest.approx(2 * window)
    assert s.failover_replugs == 2
