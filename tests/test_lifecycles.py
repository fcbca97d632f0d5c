"""VMs that arrive and leave: the laws a run must keep at every instant, the queue, and the classic run untouched."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import consolidate
from consolidate.api import build_workload
from consolidate.costmodel.model import OverheadModel
from consolidate.engine.datacenter import Datacenter
from consolidate.engine.placement import initial_placement
from consolidate.engine.state import HostTable
from consolidate.errors import ConsolidateError
from consolidate.validation import load_scenario

HOST = "hp-proliant-ml110-g5"  # 2 cores x 2,660 MIPS, 4,096 MB


def _scenario(groups, hosts=2, policy="pabfd", on_unplaceable="queue", max_wait_s=None, consolidation=False):
    sc = {"name": "lc", "duration_s": 6000, "interval_s": 300, "hosts": [{"type": HOST, "count": hosts}],
          "vm_types": [{"name": "s", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 1024},
                       {"name": "m", "vcpus": 2, "mips_per_vcpu": 1000, "memory_mb": 2048}],
          "on_unplaceable": on_unplaceable, "placement": policy, "vms": groups}
    if max_wait_s is not None:
        sc["max_wait_s"] = max_wait_s
    if consolidation:
        sc["consolidation"] = {"policy": "thr-mmt-0.8"}
    return sc


group = st.builds(
    lambda n, t, a, life, mean: {"count": n, "type": t, "start_s": a, "end_s": a + life,
                                 "trace": {"synthetic": {"mean": mean, "amplitude": 0.0}}},
    st.integers(1, 4), st.sampled_from(["s", "m"]), st.floats(0, 5000).map(lambda x: round(x, 1)),
    st.floats(10, 4000).map(lambda x: round(x, 1)), st.floats(0.05, 0.9))


class _Overloaded:
    """A host sink (engine.record.HostSink) keeping each interval's share of time each host is over capacity."""

    def __init__(self):
        self.rows = []

    def put(self, rows):
        self.rows.append(rows.overloaded)


def _run_checking(data: dict):
    """Run step by step, checking the laws after every SimPy event; returns the record and the workload."""
    sc = load_scenario(data)
    wl = build_workload(sc)
    hosts = HostTable.from_scenario(sc)
    om = OverheadModel(sc, wl, hosts.types) if sc.overhead_enabled else None
    dc = Datacenter(sc, wl, hosts, initial_placement(sc, wl, hosts, om), om=om, host_rows=_Overloaded())
    st_, env = dc.state, dc.env
    mem = wl.memory_need_mb(sc.memory_basis)
    end = sc.duration_s
    while env.peek() <= end:
        env.step()
        now = env.now
        on = st_.vm_host >= 0
        # never on a host before its start or after its end
        assert (wl.start_s[on] <= now + 1e-9).all() and (wl.end_s[on] >= now - 1e-9).all(), now
        leaving = on & (wl.end_s <= now - 1e-9)
        assert not leaving.any()
        # memory holds at every instant: what runs there plus what migrates to it
        where = np.concatenate([st_.vm_host[on], st_.vm_dest[st_.vm_dest >= 0]])
        need = np.concatenate([mem[on], mem[st_.vm_dest >= 0]])
        used = np.bincount(where, weights=need, minlength=len(hosts))
        assert (used <= hosts.memory_mb + 1e-6).all(), (now, used)
    return dc.run(), wl, sc, dc


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(group, min_size=1, max_size=4), st.sampled_from(["pabfd", "ff", "bfd"]),
       st.sampled_from(["queue", "reject"]), st.sampled_from([None, 600.0]))
def test_lifecycle_laws(groups, policy, unplaceable, max_wait):
    data = _scenario(groups, policy=policy, on_unplaceable=unplaceable,
                     max_wait_s=max_wait if unplaceable == "queue" else None)
    rec, wl, sc, dc = _run_checking(data)
    # the same run's per-VM rows (a run's record keeps only their totals), as (intervals, VMs) grids
    vi = consolidate.run(data).vm_intervals
    grid = lambda col: vi[col].to_numpy(np.float64).reshape(sc.n_intervals, len(wl.vms))  # noqa: E731
    # a VM on a host at an interval's start lives then
    t = np.arange(sc.n_intervals)[:, None] * sc.interval_s
    on = grid("host") >= 0
    assert not (on & ((t < wl.start_s[None, :] - 1e-9) | (t >= wl.end_s[None, :] - 1e-9))).any()
    # demand = served + unserved + queued, with nothing served beyond demand and nothing queued that was not asked
    d = grid("cpu_demand_mips")
    served, queued = grid("cpu_served_mips"), grid("cpu_queued_mips")
    assert (served + queued <= d * (1 + 1e-5) + 1e-3).all()
    # hosts never over capacity here (total demand per host stays low), so all that is not queued is served
    # unless the VM was rejected
    rejected = dc.life.rejected
    ok = ~rejected
    np.testing.assert_allclose((served + queued)[:, ok].sum(axis=0), d[:, ok].sum(axis=0), rtol=1e-5, atol=1e-2)
    # no CPU work outside a VM's life
    assert (d[(t + sc.interval_s <= wl.start_s[None, :]) | (t >= wl.end_s[None, :])] == 0).all()


def test_work_arriving_mid_interval_is_served_from_its_start():
    data = _scenario([{"name": "a", "count": 1, "type": "s", "start_s": 450, "end_s": 1050,
                       "trace": {"synthetic": {"mean": 0.5, "amplitude": 0.0, "random_phase": False}}}])
    res = consolidate.run(data)
    s = res.summary.iloc[0]
    # 500 MIPS for 600 s
    assert s["cpu_demand_mips_h"] == pytest.approx(500 * 600 / 3600)
    assert s["cpu_served_mips_h"] == pytest.approx(500 * 600 / 3600)
    assert s["vms_arrived"] == 1 and s["vms_departed"] == 1 and s["vms_queued"] == 0
    v = res.vm_intervals
    assert v.loc[v.time_s == 300, "cpu_demand_mips"].iloc[0] == pytest.approx(250.0)  # half the interval
    assert v.loc[v.time_s == 300, "host"].iloc[0] == -1  # not there at the interval's start


def test_queue_first_come_first_served_and_max_wait():
    # one host holds 4 small VMs; 4 live to 3000 s, 4 more arrive at 1000 s and must wait for them
    base = {"name": "base", "count": 4, "type": "s", "end_s": 3000, "trace": {"synthetic": {"mean": 0.2}}}
    late = {"name": "late", "count": 4, "type": "s", "start_s": 1000, "end_s": 5000,
            "trace": {"synthetic": {"mean": 0.2}}}
    s = consolidate.run(_scenario([base, late], hosts=1)).summary.iloc[0]
    assert s["vms_queued"] == 4 and s["queue_wait_s_max"] == pytest.approx(2000.0)
    assert s["vms_rejected"] == 0 and s["cpu_unserved_mips_h"] == pytest.approx(0.0, abs=1e-6)
    assert s["cpu_queued_mips_h"] == pytest.approx(4 * 200 * 2000 / 3600, rel=1e-4)
    s = consolidate.run(_scenario([base, late], hosts=1, max_wait_s=900)).summary.iloc[0]
    assert s["vms_rejected"] == 4 and s["queue_wait_s_max"] == pytest.approx(900.0)
    assert s["cpu_queued_mips_h"] == pytest.approx(4 * 200 * 900 / 3600, rel=1e-4)
    assert s["cpu_rejected_mips_h"] == pytest.approx(4 * 200 * 4000 / 3600, rel=1e-4)
    s = consolidate.run(_scenario([base, late], hosts=1, on_unplaceable="reject")).summary.iloc[0]
    assert s["vms_rejected"] == 4 and s["vms_queued"] == 0
    with pytest.raises(ConsolidateError, match="arriving at 1000 s fits no host"):
        consolidate.run(_scenario([base, late], hosts=1, on_unplaceable="error"))


def test_arrival_prefers_a_host_that_is_on():
    # first-fit would take host 0 anyway; PABFD on identical empty hosts picks any: the on host must win
    first = {"name": "a", "count": 1, "type": "s", "trace": {"synthetic": {"mean": 0.3}}}
    late = {"name": "b", "count": 1, "type": "s", "start_s": 600, "trace": {"synthetic": {"mean": 0.3}}}
    res = consolidate.run(_scenario([first, late], hosts=3))
    assert res.vms.host_at_end.tolist()[0] == res.vms.host_at_end.tolist()[1]
    assert res.summary.iloc[0]["hosts_active_max"] == 1


def test_departing_vm_migration_is_cancelled():
    # four VMs fill host 0, a fifth arrives on host 1; three leave at 1000 s and the underloaded hosts are
    # consolidated by a live migration: VM 0 leaves 5 s into its migration, which must stop there
    groups = [{"name": f"a{i}", "count": 1, "type": "s", "end_s": 1000 if i else 6000,
               "trace": {"synthetic": {"mean": 0.1}}} for i in range(4)]
    groups.append({"name": "late", "count": 1, "type": "s", "start_s": 500, "trace": {"synthetic": {"mean": 0.1}}})
    data = _scenario(groups, hosts=2, consolidation=True)
    data["migration"] = {"model": "precopy"}
    rec, wl, sc, dc = _run_checking(data)
    (m,) = rec.migrations
    assert m.end_s - m.start_s > 10 and not m.aborted
    data["vms"][m.vm]["end_s"] = m.start_s + 5
    rec, wl, sc, dc = _run_checking(data)
    (m2,) = rec.migrations
    assert m2.vm == m.vm and m2.aborted and "departed" in m2.reason and m2.end_s == pytest.approx(m.start_s + 5)
    assert (dc.state.vm_dest < 0).all() and dc.state.vm_host[m.vm] == -1


def test_without_lifecycles_the_run_is_the_classic_one():
    data = _scenario([{"count": 3, "type": "s", "trace": {"synthetic": {"mean": 0.4}}}])
    data["on_unplaceable"] = "reject"
    res = consolidate.run(data)
    assert "vms_arrived" not in res.summary.columns and "datacenter" not in res.frames
    assert "cpu_queued_mips" not in res.vm_intervals.columns and "start_s" not in res.vms.columns
    # a window that is the whole run is no lifecycle either
    data["vms"][0]["start_s"], data["vms"][0]["end_s"] = 0, 6000
    again = consolidate.run(data)
    assert again.summary.drop(columns=["run_id", "scenario_sha256", "wall_s"]).equals(
        res.summary.drop(columns=["run_id", "scenario_sha256", "wall_s"]))


def test_lifecycles_refuse_what_does_not_follow_them_yet(tmp_path):
    data = _scenario([{"count": 1, "type": "s", "start_s": 10, "trace": {"synthetic": {"mean": 0.4}}}])
    data["cloudsim_compat"] = True
    with pytest.raises(ConsolidateError, match="do not combine with cloudsim_compat"):
        load_scenario(data)
    del data["cloudsim_compat"]
    data["overhead"] = {"enabled": True}
    data["failures"] = {"hosts": [{"time_to_failure": {"distribution": "exponential", "mean_s": 3600},
                                   "time_to_repair": {"distribution": "exponential", "mean_s": 600}}]}
    load_scenario(data)  # the overhead model and failures follow lifecycles
    data = _scenario([{"count": 1, "type": "s", "trace": {"synthetic": {"mean": 0.4}}}], on_unplaceable="reject",
                     max_wait_s=10)
    with pytest.raises(ConsolidateError, match="max_wait_s: applies to a queue"):
        load_scenario(data)


# --- with the overhead model ----------------------------------------------------------------------------------

# per-VM figures of the overhead model in vm_intervals: none may be non-zero for a VM without a host
PRICED = ["cpu_overhead_mips", "cpu_backend_mips", "exits_per_s", "tlb_flushes_per_s", "world_switches_per_s",
          "net_pps_demand", "net_pps_served", "disk_iops_demand", "disk_iops_served"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(group, min_size=1, max_size=4), st.sampled_from(["pabfd", "ff", "bfd"]),
       st.sampled_from(["queue", "reject"]), st.sampled_from(["nominal", "peak_demand", "initial_demand"]))
def test_lifecycle_laws_with_overhead(groups, policy, unplaceable, basis):
    data = _scenario(groups, policy=policy, on_unplaceable=unplaceable)
    data["overhead"] = {"enabled": True}
    data["placement"] = {"policy": policy, "cpu_basis": basis}
    rec, wl, sc, dc = _run_checking(data)  # the instants' laws, the hosts' overload and the queue
    v = consolidate.run(data).vm_intervals  # the same run's per-VM rows (time-major, VM-minor)
    n_int, n_vm = sc.n_intervals, len(wl.vms)
    col = {c: v[c].to_numpy(np.float64).reshape(n_int, n_vm) for c in
           ["cpu_demand_mips", "cpu_effective_mips", "cpu_served_mips", "cpu_queued_mips", *PRICED]}
    guest, eff, served, queued = (col[c] for c in ["cpu_demand_mips", "cpu_effective_mips", "cpu_served_mips",
                                                   "cpu_queued_mips"])
    np.testing.assert_allclose(eff, guest + col["cpu_overhead_mips"] + col["cpu_backend_mips"], rtol=1e-5, atol=1e-3)
    life, dt = dc.life, sc.interval_s
    t = np.arange(n_int)[:, None] * dt
    # demand = served + unserved + queued with the effective demand: nothing served or queued beyond it
    assert (served + queued <= eff * (1 + 1e-5) + 1e-3).all()
    # where no host is short of CPU every VM's demand is served or queued, interval by interval
    calm = ~(np.array(dc.host_rows.rows) > 0).any(axis=1)[:, None] & ~life.rejected[None, :]
    np.testing.assert_allclose((served + queued)[calm], eff[calm], rtol=1e-4, atol=1e-2)
    # nothing priced for a VM without a host: outside its life, while it waits the whole interval, if rejected
    outside = (t + dt <= wl.start_s[None, :]) | (t >= wl.end_s[None, :])
    qa = np.nan_to_num(life.queued_at, nan=np.inf)[None, :]
    qb = np.nan_to_num(life.queue_end, nan=np.inf)[None, :]
    waiting = (qa <= t + 1e-9) & (qb >= t + dt - 1e-9)
    hostless = outside | waiting | (life.rejected & ~life.placed_ever)[None, :]
    for c in PRICED:
        assert (col[c][hostless] == 0).all(), c
    # and a VM that ran on a host in an interval (from its start, or placed inside it) pays for it there: the laws
    # above are not vacuous
    working = (served > 0) & (guest > 0)
    assert working.any() and (col["cpu_overhead_mips"][working] > 0).all()
    # what waits is guest work alone: no host, no overhead
    assert (queued <= guest * (1 + 1e-5) + 1e-3).all()


def test_overhead_of_a_vm_arriving_and_leaving_inside_intervals():
    # one VM lives 450 s to 1050 s at 50%: its overhead is priced for the 600 s it runs, on the host it is placed
    # on, and nothing before or after; the same VM there all the time costs (1050 - 450) / 6000 of it in all
    flat = {"synthetic": {"mean": 0.5, "amplitude": 0.0, "random_phase": False}}
    data = _scenario([{"name": "a", "count": 1, "type": "s", "start_s": 450, "end_s": 1050, "trace": flat}])
    data["overhead"] = {"enabled": True}
    res = consolidate.run(data)
    s = res.summary.iloc[0]
    whole = _scenario([{"name": "a", "count": 1, "type": "s", "trace": flat}])
    whole["overhead"] = {"enabled": True}
    w = consolidate.run(whole).summary.iloc[0]
    assert s["overhead_mips_h"] == pytest.approx(w["overhead_mips_h"] * 600 / 6000, rel=1e-4)
    assert s["backend_mips_h"] == pytest.approx(w["backend_mips_h"] * 600 / 6000, rel=1e-4)
    assert s["cpu_served_mips_h"] == pytest.approx(s["cpu_effective_mips_h"], rel=1e-5)
    assert s["overhead_mips_h"] > 0 and s["cpu_unserved_mips_h"] == pytest.approx(0.0, abs=1e-3)
    v = res.vm_intervals.set_index("time_s")
    per = w["overhead_mips_h"] * 3600 / 6000  # its overhead rate (MIPS) while it runs
    assert v.loc[300, "cpu_overhead_mips"] == pytest.approx(per * 150 / 300, rel=1e-4)  # placed at 450 s
    assert v.loc[900, "cpu_overhead_mips"] == pytest.approx(per * 150 / 300, rel=1e-4)  # gone at 1050 s
    assert v.loc[600, "cpu_overhead_mips"] == pytest.approx(per, rel=1e-4)
    assert (v.loc[[0, 1200, 3000], ["cpu_overhead_mips", "cpu_backend_mips", "exits_per_s",
                                    "net_pps_demand", "disk_iops_demand"]] == 0).all().all()
    # its I/O path is the one of the host it was placed on: the net-path figures of the summary include it
    assert res.vms["net_path"].tolist() == ["virtio"]
    assert s["virt_cpu_mips_h_net_virtio"] == pytest.approx(s["overhead_mips_h"] + s["backend_mips_h"], rel=1e-5)


# --- with failures ---------------------------------------------------------------------------------------------

def test_failures_with_lifecycles(tmp_path):
    # one host fails from 1000 s to 2000 s: `a` (0-3000 s) waits for the repair and boots again at 2000 s; `b`
    # (0-1500 s) leaves while down and never boots again; `c` arrives at 1200 s on no host and queues (that is a
    # wait, not a failure). Availability is over each VM's life: a and b were down 1000 s of 3000 and 500 of 1500.
    trace = tmp_path / "failures.csv"
    trace.write_text("target,index,start_s,end_s\nhost,0,1000,2000\n")
    flat = {"synthetic": {"mean": 0.3, "amplitude": 0.0}}
    data = _scenario([{"name": "a", "count": 1, "type": "s", "end_s": 3000, "trace": flat},
                      {"name": "b", "count": 1, "type": "s", "end_s": 1500, "trace": flat},
                      {"name": "c", "count": 1, "type": "s", "start_s": 1200, "end_s": 4000, "trace": flat}], hosts=1)
    data["failures"] = {"trace": str(trace)}
    rec, wl, sc, dc = _run_checking(data)
    f = dc.failures
    np.testing.assert_allclose(f.downtime_s, [1000.0, 500.0, 0.0])
    np.testing.assert_allclose(f.availability(sc.duration_s, dc.life.life_s(sc.duration_s)), [2 / 3, 2 / 3, 1.0])
    (r,) = f.records
    assert r.vms == [0, 1] and r.restarted_s == {0: 2000.0} and r.restarted_on == {0: 0}
    res = consolidate.run(data)
    s = res.summary.iloc[0]
    assert s["availability_min"] == pytest.approx(2 / 3) and s["availability_p50"] == pytest.approx(2 / 3)
    assert s["availability_min_c"] == 1.0 and s["vm_failure_downtime_s_total"] == pytest.approx(1500.0)
    assert s["vms_queued"] == 1 and s["queue_wait_s_max"] == pytest.approx(800.0)
    assert s["failure_lost_mips_h"] > 0
    fr = res.failures.set_index("vm")
    assert fr.loc[0, "restarted_s"] == 2000.0 and np.isnan(fr.loc[1, "restarted_s"])  # b left: no restart


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(group, min_size=1, max_size=4), st.sampled_from(["queue", "reject"]), st.booleans(),
       st.integers(0, 3))
def test_lifecycle_laws_with_failures(groups, unplaceable, overhead, seed):
    data = _scenario(groups, hosts=3, on_unplaceable=unplaceable)
    data["seed"] = seed
    data["failures"] = {"hosts": [{"time_to_failure": {"distribution": "exponential", "mean_s": 4000},
                                   "time_to_repair": {"distribution": "exponential", "mean_s": 800}}]}
    if overhead:
        data["overhead"] = {"enabled": True}
    rec, wl, sc, dc = _run_checking(data)  # at every event: no VM on a host outside its life, memory holds
    f, life = dc.failures, dc.life
    assert not (dc.state.vm_host[dc.state.failed[np.maximum(dc.state.vm_host, 0)] & (dc.state.vm_host >= 0)]).size
    # no VM boots again after its end, and it is down only within its life
    for r in f.records:
        for v, t in r.restarted_s.items():
            assert wl.start_s[v] - 1e-9 <= t <= wl.end_s[v] + 1e-9
    lived = life.life_s(sc.duration_s)
    assert (f.downtime_s <= lived + 1e-6).all()
    a = f.availability(sc.duration_s, lived)
    assert ((a[lived > 0] >= -1e-12) & (a[lived > 0] <= 1.0)).all() and np.isnan(a[lived == 0]).all()
    # demand = served + unserved + queued, nothing served or queued beyond the (effective) demand
    v = consolidate.run(data).vm_intervals
    eff = v["cpu_effective_mips" if overhead else "cpu_demand_mips"].to_numpy(np.float64)
    assert (v["cpu_served_mips"] + v["cpu_queued_mips"] <= eff * (1 + 1e-5) + 1e-3).all()
