"""Host and rack failures: the schedule, what a failure does to VMs and migrations, high-availability restart, and
the availability metrics."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import consolidate
from consolidate import api
from consolidate.hardware import reliability
from consolidate.scenario.model import Lifetime
from tests.conftest import TINY


def _scenario(tmp_path, trace_rows: str | None = None, hosts: int = 3, vms: int = 2, **failures) -> dict:
    """`vms` flat VMs at 50% of 1860 MIPS on `hosts` ML110 G4s (two fit a host): hand-checkable."""
    sc = copy.deepcopy(TINY)
    sc["duration_s"] = 7200
    sc["hosts"] = [{"type": "hp-proliant-ml110-g4", "count": hosts}]
    sc["vms"][0]["count"] = vms
    sc["vms"][0]["restart_s"] = 60
    if trace_rows is not None:
        (tmp_path / "failures.csv").write_text("target,index,start_s,end_s\n" + trace_rows)
        failures["trace"] = "failures.csv"
    sc["failures"] = failures
    return sc


def test_a_host_failure_by_hand(tmp_path):
    # both VMs start on host 0 (best fit packs them); it fails at 1000 s, is repaired at 5000 s
    res = consolidate.run(consolidate.load_scenario(_scenario(tmp_path, "host,0,1000,5000\n"), base_dir=tmp_path))
    s, f = res.summary.iloc[0], res.failures
    assert (res.vms.host == 0).all()
    assert s.host_failures == 1 and s.vm_failures == 2
    # each VM boots 60 s later on the next host with room (host 1 holds both: 2 x 930 MIPS of 3720)
    assert f.vm.tolist() == [0, 1] and (f.restart_host == 1).all()
    assert f.restarted_s.tolist() == [1060.0, 1060.0] and f.downtime_s.tolist() == [60.0, 60.0]
    assert s.vm_failure_downtime_s_total == pytest.approx(120.0)
    assert s.availability_min == pytest.approx(1 - 60 / 7200) and s.availability_p50 == s.availability_min
    assert s.availability_min_flat == s.availability_min
    # the interval of the failure ([900, 1200)) loses its work up to the boot; the VM is served from 1060 s on
    vi = res.vm_intervals.set_index(["time_s", "vm"])
    demand = 0.5 * 1860
    assert vi.loc[(900.0, 0), "cpu_served_mips"] == pytest.approx(demand * (1200 - 1060) / 300, rel=1e-6)
    assert vi.loc[(1200.0, 0), "host"] == 1 and vi.loc[(1200.0, 0), "cpu_served_mips"] == pytest.approx(demand)
    # work lost: the whole failure interval for each VM (the crash takes what the interval had done)
    assert s.failure_lost_mips_h == pytest.approx(2 * demand * 300 / 3600, rel=1e-6)
    # the failed host is off while down; the repaired host comes back empty
    hi = res.host_intervals
    assert (hi[(hi.host == 0) & (hi.time_s >= 1200)].state == "off").all()


def test_no_host_with_room_means_waiting_counted(tmp_path):
    # one host only: its VMs wait for its repair, then boot on it again
    res = consolidate.run(consolidate.load_scenario(_scenario(tmp_path, "host,0,1000,2500\n", hosts=1),
                                                    base_dir=tmp_path))
    s, f = res.summary.iloc[0], res.failures
    assert s.vms_waiting_for_restart_max == 2
    assert f.restarted_s.tolist() == [2500.0, 2500.0] and (f.restart_host == 0).all()
    assert s.vm_failure_downtime_s_total == pytest.approx(2 * 1500.0)


def test_a_rack_failure_takes_every_host_of_the_rack(tmp_path):
    sc = _scenario(tmp_path, "rack,0,1000,4000\n", hosts=4, vms=2)
    sc["network"] = {"hosts_per_rack": 2}
    res = consolidate.run(consolidate.load_scenario(sc, base_dir=tmp_path))
    f = res.failures
    assert sorted(f.host.unique()) == [0, 1] and (f[f.vm >= 0].restart_host >= 2).all()
    assert res.summary.host_failures.iloc[0] == 2


def test_failures_off_is_todays_run_bit_for_bit(tmp_path):
    base = _scenario(tmp_path, hosts=3, vms=4)
    del base["failures"]
    with_empty = copy.deepcopy(base)
    with_empty["failures"] = {}  # a failures block with no process and no trace: nothing fails
    a, b = consolidate.run(base), consolidate.run(with_empty)
    for name in ("vm_intervals", "host_intervals", "vms", "hosts"):
        assert a.frames[name].equals(b.frames[name]), name
    shared = [c for c in a.summary.columns if c not in ("run_id", "wall_s", "scenario_sha256")]
    assert a.summary[shared].equals(b.summary[shared])
    assert b.summary.host_failures.iloc[0] == 0 and b.summary.availability_min.iloc[0] == 1.0


def test_renewal_schedule_has_the_mean_it_is_given():
    gen = np.random.default_rng(5)
    for life in (Lifetime(distribution="exponential", mean_s=100.0),
                 Lifetime(distribution="weibull", mean_s=100.0, shape=0.7),
                 Lifetime(distribution="lognormal", mean_s=100.0, shape=1.2)):
        assert reliability.draw(life, gen, 200_000).mean() == pytest.approx(100.0, rel=0.02)
    spans = reliability.renewal(Lifetime(mean_s=1000.0), Lifetime(mean_s=100.0), np.random.default_rng(1), 1e7)
    down = sum(b - a for a, b in spans)
    assert down / 1e7 == pytest.approx(100 / 1100, rel=0.05)  # unavailability = MTTR / (MTTF + MTTR)
    assert all(a < b for a, b in spans) and all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), policy=st.sampled_from([None, "thr-mmt-0.7"]))
def test_no_vm_is_ever_on_a_failed_host(tmp_path_factory, seed, policy):
    tmp = tmp_path_factory.mktemp("f")
    sc = _scenario(tmp, hosts=6, vms=9)
    sc["failures"] = {"hosts": [{"time_to_failure": {"mean_s": 3000}, "time_to_repair": {"mean_s": 900}}]}
    sc["vms"][0]["trace"]["synthetic"] = {"mean": 0.4, "amplitude": 0.3, "period_s": 3600, "noise_std": 0.2}
    sc["seed"] = seed
    if policy:
        sc["consolidation"] = {"policy": policy}
    s = api.load_scenario(sc, base_dir=tmp)
    wl = api.build_workload(s)
    hosts = api.HostTable.from_scenario(s)
    dc = api.Datacenter(s, wl, hosts, api.initial_placement(s, wl, hosts))
    bad = []

    def check():
        while True:
            st_ = dc.state
            on_failed = st_.failed[np.where(st_.vm_host >= 0, st_.vm_host, 0)] & (st_.vm_host >= 0)
            going = st_.failed[np.where(st_.vm_dest >= 0, st_.vm_dest, 0)] & (st_.vm_dest >= 0)
            placed = st_.vm_host >= 0
            mem = np.bincount(st_.vm_host[placed], weights=st_.ram_mb[placed], minlength=len(hosts))
            bad.append(bool(on_failed.any() or going.any() or (mem > hosts.memory_mb).any()))
            yield dc.env.timeout(7)

    dc.env.process(check())
    rec = dc.run()
    assert not any(bad)
    assert rec.failures.host_failures > 0  # the property was exercised


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(["pinned", "failover"]))
def test_vf_pools_hold_through_failures_and_restarts(tmp_path_factory, seed, policy):
    tmp = tmp_path_factory.mktemp("v")
    sc = _scenario(tmp, hosts=6, vms=4)
    sc["host_types"] = [{"name": "srv", "cores": 8, "mips_per_core": 2500, "memory_mb": 65536, "power_idle_w": 100,
                         "power_max_w": 250, "cpu": "intel-skylake-sp",
                         "nics": [{"model": "intel-x540", "vfs_per_port": 1}]}]  # 2 VFs a host
    sc["hosts"] = [{"type": "srv", "count": 6}]
    sc["overhead"] = {"enabled": True}
    sc["vms"].append({"name": "sriov", "count": 8, "type": "small", "profile": "network_appliance",
                      "trace": {"synthetic": {"mean": 0.3}}, "virtualization": {"io": {"net": "sriov"}},
                      "migration_policy": policy, "restart_s": 30})
    sc["failures"] = {"hosts": [{"time_to_failure": {"mean_s": 2500}, "time_to_repair": {"mean_s": 1500}}]}
    sc["seed"] = seed
    s = api.load_scenario(sc, base_dir=tmp)
    wl = api.build_workload(s)
    hosts = api.HostTable.from_scenario(s)
    om = api.OverheadModel(s, wl, hosts.types)
    dc = api.Datacenter(s, wl, hosts, api.initial_placement(s, wl, hosts, om), om=om)
    sriov = (wl.vms.group == "sriov").to_numpy()
    worst = []

    def check():
        while True:
            st_ = dc.state
            holds = sriov & (st_.vm_host >= 0)
            if st_.failover is not None:  # a failover VM holds a VF only while attached
                holds &= st_.failover.attached | ~st_.failover.vm
            held = np.bincount(st_.vm_host[holds], minlength=len(hosts))
            worst.append(int((held - hosts.vf_capacity).max()))
            assert not (st_.failed[np.where(st_.vm_host >= 0, st_.vm_host, 0)] & (st_.vm_host >= 0)).any()
            yield dc.env.timeout(11)

    dc.env.process(check())
    rec = dc.run()
    assert max(worst) <= 0
    assert rec.failures.host_failures > 0


def test_a_drained_host_that_fails_is_not_counted_twice(tmp_path):
    # host 0 holds both VMs and cannot be drained (they are pinned); it fails during the drain: the VMs boot
    # elsewhere and are no longer stuck, and the drained host ends empty
    sc = _scenario(tmp_path, "host,0,2000,3000\n", hosts=3, vms=2)
    sc["host_types"] = [{"name": "srv", "cores": 8, "mips_per_core": 2500, "memory_mb": 65536, "power_idle_w": 100,
                         "power_max_w": 250, "cpu": "intel-skylake-sp",
                         "nics": [{"model": "intel-x540", "vfs_per_port": 2}]}]
    sc["hosts"] = [{"type": "srv", "count": 3}]
    sc["overhead"] = {"enabled": True}
    sc["vms"][0]["virtualization"] = {"io": {"net": "sriov"}}
    sc["maintenance"] = [{"at_s": 1000, "hosts": [0]}]
    sc["maintenance_baseline"] = False
    res = consolidate.run(consolidate.load_scenario(sc, base_dir=tmp_path))
    s = res.summary.iloc[0]
    assert (res.vms.host == 0).all()
    assert s.drain_vms_stuck == 0 and s.drain_hosts_not_emptied == 0
    assert (res.failures.restart_host > 0).all() and s.vm_failures == 2


def test_plan_finds_spare_hosts_for_an_availability_target_over_seeds(tmp_path, write_yaml):
    from consolidate.sweep.plan import plan

    # 6 flat VMs (two fit a host, so three hosts hold them); hosts fail about every 3 h and take 1 h to repair:
    # with no spare host a failure's VMs wait for the repair, with spares they boot after 60 s
    sc = _scenario(tmp_path, hosts=3, vms=6)
    sc["duration_s"] = 86400
    sc["failures"] = {"hosts": [{"time_to_failure": {"mean_s": 10800}, "time_to_repair": {"mean_s": 3600}}]}
    path = write_yaml(sc)
    value, trials = plan(path, "availability_min>=0.99", low=3, high=8, repeats=3)
    assert all(len(t.per_seed) == 3 for t in trials if t.metric == t.metric)
    by_value = {t.value: t for t in trials}
    best = by_value[value]
    assert best.ok and min(best.per_seed) >= 0.99 and best.metric == min(best.per_seed)
    below = by_value[value - 1]
    assert not below.ok and (below.metric != below.metric or below.metric < 0.99)
    assert value > 3  # spares are needed: the minimum that holds the VMs does not meet the target
