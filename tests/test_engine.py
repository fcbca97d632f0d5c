"""The engine on tiny scenarios whose numbers can be computed by hand."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.engine.sharing import share_cpu
from consolidate.hardware.power import power_w

G4 = [86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117]  # ML110 G4 SPECpower curve (CloudSim 3.0.3)


def test_energy_at_constant_load_is_the_hand_integral(tiny):
    res = consolidate.run(tiny)
    # VM: 0.5 x 1860 MIPS on a 2 x 1860 MIPS host -> host at 25 % -> halfway between 20 % and 30 %
    watts = 92.6 + 0.5 * (96 - 92.6)
    assert res.host_intervals["power_w"].to_numpy() == pytest.approx([watts] * 12)
    assert res.summary.energy_kwh.iloc[0] == pytest.approx(watts * 3600 / 3.6e6, rel=1e-12)


def test_idle_hosts_off_or_at_idle_power(tiny):
    tiny["hosts"][0]["count"] = 2
    on_off = consolidate.run(tiny).summary.iloc[0]
    tiny["power_off_idle_hosts"] = False
    all_on = consolidate.run(tiny).summary.iloc[0]
    assert (on_off.hosts_active_mean, all_on.hosts_active_mean) == (1, 2)
    # the empty host draws its 0 % figure, 86 W, for the hour
    assert all_on.energy_kwh - on_off.energy_kwh == pytest.approx(86 / 1000, rel=1e-12)


def test_power_curve_interpolation():
    curves = np.array([G4], dtype=float)
    u = np.array([0.0, 0.05, 0.25, 0.999, 1.0, 1.3])
    np.testing.assert_allclose(power_w(u, curves, np.zeros(6, int)), [86, 87.7, 94.3, 116.97, 117, 117])


def test_share_cpu_proportional_and_capped_by_cores():
    cap = np.array([2000.0, 4000.0])
    # three 1000-MIPS VMs asking 1000 each on host 0 (2000 MIPS); one 4-vCPU VM asking 4000 on host 1,
    # capped at 2 cores x 1000 by the caller's vm_cap; one unplaced VM
    demand = np.array([1000.0, 1000.0, 1000.0, 4000.0, 500.0])
    vm_host = np.array([0, 0, 0, 1, -1])
    vm_cap = np.array([1000.0, 1000.0, 1000.0, 2000.0, 1000.0])
    served, host_req, host_served = share_cpu(demand, vm_host, vm_cap, cap)
    np.testing.assert_allclose(served, [2000 / 3] * 3 + [2000.0, 0.0])
    np.testing.assert_allclose(host_req, [3000.0, 2000.0])
    np.testing.assert_allclose(host_served, [2000.0, 2000.0])


def test_overload_is_recorded_as_unserved(tiny):
    tiny["vms"][0]["count"] = 3
    tiny["vms"][0]["trace"]["synthetic"]["mean"] = 1.0
    tiny["cpu_overcommit"] = 2.0  # allow packing 3 full VMs onto 2 cores
    tiny["placement"] = {"policy": "first-fit", "cpu_basis": "nominal"}
    res = consolidate.run(tiny)
    s = res.summary.iloc[0]
    assert s.cpu_demand_mips_h == pytest.approx(3 * 1860)
    assert s.cpu_served_mips_h == pytest.approx(2 * 1860)
    assert s.sla_unserved_fraction == pytest.approx(1 / 3)
    vi = res.vm_intervals
    np.testing.assert_allclose(vi.cpu_served_mips + vi.cpu_unserved_mips, vi.cpu_demand_mips, rtol=1e-6)


def test_same_seed_same_summary_and_frames(tiny):
    tiny["vms"][0].update(count=20)
    tiny["vms"][0]["trace"]["synthetic"].update(amplitude=0.3, noise_std=0.1)
    tiny["hosts"][0]["count"] = 10
    a, b = consolidate.run(tiny), consolidate.run(tiny)
    other = consolidate.run(tiny, seed=2)
    drop = ["run_id", "wall_s"]
    pd.testing.assert_frame_equal(a.summary.drop(columns=drop), b.summary.drop(columns=drop))
    pd.testing.assert_frame_equal(a.vm_intervals, b.vm_intervals)
    assert a.summary.cpu_demand_mips_h.iloc[0] != other.summary.cpu_demand_mips_h.iloc[0]


def test_default_scenario_places_every_planetlab_vm():
    res = consolidate.run()
    s = res.summary.iloc[0]
    assert (s.hosts, s.vms, s.vms_placed) == (800, 1052, 1052)
    # memory is the binding constraint of the static packing: no host is over its 4096 MB
    assert (res.hosts.memory_used_mb <= res.hosts.memory_mb).all()
    # VM types in four equal consecutive blocks, as CloudSim's study assigns them (263 = ceil(1052 / 4))
    assert res.vms.vm_type.iloc[[0, 262, 263, 526, 789, 1051]].tolist() == [
        "ec2-high-cpu-medium", "ec2-high-cpu-medium", "ec2-extra-large", "ec2-small", "ec2-micro", "ec2-micro"]
    # demand integrates the real trace: mean utilisation 12.31 % over the blocks' MIPS
    mips = res.vms.vcpus * res.vms.mips_per_vcpu
    assert s.cpu_demand_mips_h == pytest.approx(res.vm_intervals.cpu_demand_mips.sum() * 300 / 3600, rel=1e-6)
    assert s.cpu_demand_mips_h / 24 / mips.sum() == pytest.approx(0.1231, abs=0.01)


def test_a_long_run_accounts_its_last_interval(tiny):
    # a year in days: duration_s + 1e-9 rounds back to duration_s at this size, so the clock must run just past it
    import consolidate

    tiny["duration_s"], tiny["interval_s"] = 365 * 86400, 86400
    vi = consolidate.run(tiny).vm_intervals
    assert len(vi) == 365
    np.testing.assert_allclose(vi.cpu_served_mips, 0.5 * 1860)
