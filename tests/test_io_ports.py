"""NIC ports conserve bandwidth: the VMs whose traffic leaves through one physical port share its line rate
max-min fairly over their demands (each direction on its own), and what does not fit is unserved and counted."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.costmodel.interval import Ports, maxmin_fill, port_share
from consolidate.hardware import catalog as cat
from tests.conftest import TINY

WIRE_BITS = cat.packet_bytes() * 8
GBPS_PPS = 1e9 / WIRE_BITS  # packets per second that make 1 Gbit/s on the wire


def _run(tmp_path, path: str, n_vms: int, tx_gbps: float, nics: list | None = None, network_bps: float = 10e9,
         rx_gbps: float = 0.0):
    """n_vms VMs on one host, each sending tx_gbps (and receiving rx_gbps) for an hour, over `path`."""
    trace = pd.DataFrame({"time_s": [0, 300], "cpu_util": [0.5, 0.5], "net_tx_pps": [tx_gbps * GBPS_PPS] * 2,
                          "net_rx_pps": [rx_gbps * GBPS_PPS] * 2})
    trace.to_csv(tmp_path / "t.csv", index=False)
    sc = copy.deepcopy(TINY)
    host = {"name": "srv", "cores": 128, "mips_per_core": 2500, "memory_mb": 1048576, "network_bps": network_bps,
            "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-skylake-sp"}
    if nics:
        host["nics"] = nics
    sc |= {"host_types": [host], "hosts": [{"type": "srv", "count": 1}], "duration_s": 3600, "interval_s": 300,
           "overhead": {"enabled": True}, "placement": "first-fit",
           "vm_types": [{"name": "v", "vcpus": 2, "mips_per_vcpu": 1000, "memory_mb": 1024}],
           "vms": [{"name": "net", "count": n_vms, "type": "v", "trace": {"native": str(tmp_path / "t.csv"),
                                                                           "repeat": True},
                    "virtualization": {"io": {"net": path}}}]}
    return consolidate.run(sc)


def _gbps(res, column: str) -> float:
    """Mean over intervals of the VMs' summed packets per second in a vm_intervals column, as Gbit/s."""
    vi = res.vm_intervals
    return float(vi.groupby("time_s")[column].sum().mean()) * WIRE_BITS / 1e9


def test_sixty_vms_asking_1_gbps_share_one_10_gbe_port(tmp_path):
    res = _run(tmp_path, "vhost", 60, tx_gbps=1.0)
    assert _gbps(res, "net_pps_demand") == pytest.approx(60.0, rel=1e-6)
    assert _gbps(res, "net_pps_served") == pytest.approx(10.0, rel=1e-6)  # the line rate, not 60 Gbit/s
    assert _gbps(res, "net_pps_unserved") == pytest.approx(50.0, rel=1e-6)  # counted, not lost from the books
    assert res.summary.net_pps_unserved_fraction.iloc[0] == pytest.approx(50 / 60, rel=1e-6)
    served = res.vm_intervals.net_pps_served.to_numpy()
    assert served == pytest.approx(np.full(len(served), GBPS_PPS / 6))  # equal demands: equal shares


def test_a_port_is_full_duplex(tmp_path):
    # 60 x (1 Gbit/s out + 1 Gbit/s in): 10 Gbit/s each way
    res = _run(tmp_path, "vhost", 60, tx_gbps=1.0, rx_gbps=1.0)
    assert _gbps(res, "net_pps_served") == pytest.approx(20.0, rel=1e-6)


def test_vfs_spread_over_the_ports_of_their_nic(tmp_path):
    # 60 VFs of a dual-port 10 GbE 82599: 30 on each port, 10 Gbit/s per port
    res = _run(tmp_path, "sriov", 60, tx_gbps=1.0, nics=[{"model": "intel-82599"}])
    assert _gbps(res, "net_pps_served") == pytest.approx(20.0, rel=1e-6)
    # below the line rate every VF gets its demand
    res = _run(tmp_path, "sriov", 16, tx_gbps=1.0, nics=[{"model": "intel-82599"}])
    assert _gbps(res, "net_pps_unserved") == pytest.approx(0.0, abs=1e-9)


def test_maxmin_gives_small_demands_in_full_and_splits_the_rest():
    demand = np.array([1.0, 2.0, 8.0, 8.0, 5.0, 3.0])
    group = np.array([0, 0, 0, 0, 1, -1])
    out = maxmin_fill(demand, group, np.array([10.0, 100.0]))
    # group 0: 1 and 2 fit; 8 and 8 split the remaining 7; group 1 fits; -1 has no port
    assert out.tolist() == pytest.approx([1.0, 2.0, 3.5, 3.5, 5.0, 0.0])
    ports = Ports(vm_port=np.array([0, 0]), capacity_bps=np.array([1e9]), rx_share=np.array([0.0, 1.0]),
                  packet_bits=8000.0)
    # one VM only sends, the other only receives: both directions carry a full 1 Gbit/s
    assert port_share(np.array([2e5, 2e5]), ports).tolist() == pytest.approx([1.25e5, 1.25e5])


def test_migration_streams_take_port_capacity_from_the_vms():
    """A port's line rate less what migrations send or receive through it is what its VMs' packets share."""
    ports = Ports(vm_port=np.array([0, 0, 1]), capacity_bps=np.array([10e9, 10e9]), rx_share=np.array([0.0, 0.0, 1.0]),
                  packet_bits=WIRE_BITS, taken_bps=np.array([[0.0, 5e9], [2e9, 0.0]]))
    got = port_share(np.array([4, 4, 9]) * GBPS_PPS, ports) / GBPS_PPS
    np.testing.assert_allclose(got, [2.5, 2.5, 8.0])  # 5 Gbit/s sent left on port 0, 8 received on port 1


def test_vm_packets_get_less_while_a_migration_leaves_their_host(tmp_path):
    """Two VMs sending 0.4 Gbit/s each through their host's 1 GbE port; the host is drained between two interval
    starts, so its pre-copy streams (half the link, migration.bandwidth_share) are in flight when the next interval
    is priced: the VMs' 0.8 Gbit/s get the 0.5 Gbit/s left."""
    trace = pd.DataFrame({"time_s": [0, 300], "cpu_util": [0.2, 0.2], "net_tx_pps": [0.4 * GBPS_PPS] * 2,
                          "net_rx_pps": [0.0, 0.0]})
    trace.to_csv(tmp_path / "t.csv", index=False)

    def run(model: str):
        sc = copy.deepcopy(TINY)
        host = {"name": "srv", "cores": 16, "mips_per_core": 2500, "memory_mb": 32768, "network_bps": 1e9,
                "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-skylake-sp"}
        sc |= {"host_types": [host], "hosts": [{"type": "srv", "count": 2}], "duration_s": 1200, "interval_s": 300,
               "overhead": {"enabled": True}, "placement": "first-fit",
               "migration": {"model": model, "costs": "ideal", "dirty_pages_per_s_at_full_load": 0}
               if model == "precopy" else {"model": model},
               "maintenance": [{"at_s": 550, "hosts": [0]}],
               "vm_types": [{"name": "v", "vcpus": 2, "mips_per_vcpu": 1000, "memory_mb": 8192}],
               "vms": [{"name": "net", "count": 2, "type": "v",
                        "trace": {"native": str(tmp_path / "t.csv"), "repeat": True},
                        "virtualization": {"io": {"net": "vhost"}}}]}
        res = consolidate.run(sc)
        vi = res.vm_intervals
        return res, vi[vi.time_s == 600]["net_pps_unserved"].sum() / GBPS_PPS

    res, lost = run("precopy")
    mig = res.migrations
    assert len(mig) == 2 and (mig.start_s < 600).all() and (mig.end_s > 600).all()  # in flight at the tick
    assert lost == pytest.approx(0.3, rel=1e-6)
    vi = res.vm_intervals
    assert vi[vi.time_s == 900]["net_pps_unserved"].sum() == 0.0  # both done by then: the port is the VMs' again
    _, lost_fixed = run("fixed")  # CloudSim's fixed delay sends nothing over the network
    assert lost_fixed == 0.0


def test_maxmin_skips_the_sort_only_where_the_sorted_pass_gives_every_demand():
    from consolidate.costmodel.interval import _maxmin_sorted

    rng = np.random.default_rng(7)
    skipped = 0
    for trial in range(300):
        n, ports = int(rng.integers(1, 400)), int(rng.integers(1, 40))
        scale = 10.0 ** rng.uniform(-3, 12)
        d = rng.exponential(scale, n) * (rng.random(n) < 0.9)
        g = rng.integers(-1, ports, n)
        sums = np.bincount(g[g >= 0], weights=d[g >= 0], minlength=ports)
        # capacities from far above the group's demand to just at it and below (the sort must decide those)
        # every other trial only by room to spare (the fast path's case, some within a few ulps' margin)
        room = [1.0, 1e-6, 1e-9] if trial % 2 else [1.0, 1e-6, 1e-12, 0.0, -1e-12, -0.3]
        cap = sums * (1.0 + rng.choice(room, ports))
        out = maxmin_fill(d, g, cap)
        live = g >= 0
        ref = np.zeros(n)
        if live.any():
            ref[live] = _maxmin_sorted(d[live], g[live], cap)
        assert np.array_equal(out, ref), trial
        skipped += bool(live.any()) and np.array_equal(out[live], d[live])
    assert skipped > 100  # every demand was given in many trials, and the two agreed to the bit each time
