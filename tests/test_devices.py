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
    with pytest.raises(PlacementError, match="needs a passthrough device; the hosts have 0 for 2 such VMs"):
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
