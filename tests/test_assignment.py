"""Device assignment as one concept (hardware/assignment.py): which devices a VM holds from its whole I/O
configuration, net and disk, and what every part of a run does with that; NVMe controllers by passthrough."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import consolidate
from consolidate.errors import PlacementError, ScenarioError
from consolidate.hardware import assignment as asg
from consolidate.scenario.model import VmGroup
from tests.conftest import TINY


def _group(io: dict, policy: str = "pinned") -> VmGroup:
    return VmGroup.model_validate({"count": 1, "type": "v", "trace": {"synthetic": {"mean": 0.5}},
                                   "virtualization": {"io": io}, "migration_policy": policy})


def test_holding_comes_from_net_and_disk_together():
    assert asg.group_holding(_group({})).pools == ()
    assert asg.group_holding(_group({"net": "vhost", "disk": "virtio-blk"})).mobility is None
    vf = asg.group_holding(_group({"net": "sriov"}, "failover"))
    assert vf.pools == (asg.VF,) and vf.mobility == asg.FAILOVER
    both = asg.group_holding(_group({"net": "passthrough", "disk": "nvme-passthrough"}, "cold"))
    # the NVMe drive holds the VM's data: it pins the VM whatever the group asks
    assert both.pools == (asg.PORT, asg.NVME) and both.mobility == asg.PINNED
    assert asg.describe(both.pools) == "a passthrough NIC port and a passthrough NVMe controller"


def _nvme_scenario(n_vms: int, hosts: int = 3, controllers: int = 2, policy: str | None = None) -> dict:
    sc = copy.deepcopy(TINY)
    sc["host_types"] = [{"name": "srv", "cores": 16, "mips_per_core": 2500, "memory_mb": 262144,
                         "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-skylake-sp",
                         "nvme": [{"model": "intel-dc-p4500", "count": controllers}]}]
    sc["hosts"] = [{"type": "srv", "count": hosts}]
    sc["vm_types"] = [{"name": "v", "vcpus": 1, "mips_per_vcpu": 500, "memory_mb": 1024}]
    sc["vms"] = [{"name": "db", "count": n_vms, "type": "v", "profile": "database",
                  "trace": {"synthetic": {"mean": 0.3, "amplitude": 0.25, "period_s": 3600, "noise_std": 0.1}},
                  "virtualization": {"io": {"disk": "nvme-passthrough"}}},
                 {"name": "plain", "count": 6, "type": "v", "profile": "database",
                  "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.3, "period_s": 3600, "noise_std": 0.1}}}]
    sc["overhead"] = {"enabled": True}
    sc["duration_s"] = 7200
    if policy:
        sc["consolidation"] = {"policy": policy}
    return sc


def test_nvme_controllers_are_a_pool_placement_never_oversubscribes():
    res = consolidate.run(_nvme_scenario(6))
    vi = res.vm_intervals.merge(res.vms[["vm", "group"]], on="vm")
    per_host = vi[vi.group == "db"].groupby(["time_s", "host"]).size()
    assert per_host.max() == 2  # two controllers per host: three hosts take two each, CPU would allow all six
    assert res.summary.vms_rejected.iloc[0] == 0
    with pytest.raises(PlacementError, match="needs a passthrough NVMe controller; the hosts have 6 for 7 such VMs"):
        consolidate.run(_nvme_scenario(7))


def test_nvme_vms_are_pinned_in_consolidation_and_drains():
    sc = _nvme_scenario(3, hosts=4, policy="thr-mmt-0.5")
    sc["maintenance"] = [{"at_s": 1800, "hosts": [0, 1, 2, 3]}]
    sc["maintenance_baseline"] = False
    res = consolidate.run(sc)
    db = set(res.vms.loc[res.vms.group == "db", "vm"])
    assert not set(res.migrations.vm) & db  # never moved, though consolidation moved others
    stuck = res.maintenance[res.maintenance.vm.isin(db)]
    assert len(stuck) == 3 and set(stuck.reason) == {"pinned: a directly assigned device"}
    start = res.vms.set_index("vm").host
    vi = res.vm_intervals[res.vm_intervals.vm.isin(db)]
    assert (vi.host.to_numpy() == start.loc[vi.vm].to_numpy()).all()


def test_nvme_disk_costs_the_host_no_backend_thread():
    sc = _nvme_scenario(3)
    nvme = consolidate.run(sc).vm_intervals
    sc["vms"][0]["virtualization"] = {"io": {"disk": "virtio-blk"}}
    blk = consolidate.run(sc).vm_intervals
    db = (nvme.vm < 3) & (nvme.disk_iops_demand > 0)
    assert db.sum() > 50 and (nvme[db].disk_iops_unserved == 0).all()
    # the virtio-blk iothread works for every I/O; the assigned controller needs no host thread (the net path,
    # virtio in both runs, costs the same)
    extra = (blk[db].cpu_backend_mips - nvme[db].cpu_backend_mips).to_numpy()
    per_io = extra / nvme[db].disk_iops_demand.to_numpy()
    assert (extra > 0).all() and np.allclose(per_io, per_io.mean(), rtol=1e-3)  # the iothread's cost per I/O
    np.testing.assert_allclose(nvme[db].disk_iops_demand, blk[db].disk_iops_demand)


@pytest.mark.parametrize("change,path,message", [
    (lambda sc: sc["vms"][0].update(migration_policy="cold"), "vms.0.migration_policy",
     "an nvme-passthrough disk pins the VM"),
    (lambda sc: sc["vms"][0].update(migration_policy="failover"), "vms.0.migration_policy",
     "migration_policy failover needs virtualization.io.net sriov"),
    (lambda sc: sc["host_types"][0].update(virtualization={"io": {"net": "sriov"}}),
     "host_types.0.virtualization.io.net", "a host type cannot assign devices to every VM on it"),
    (lambda sc: sc["host_types"][0]["nvme"][0].update(model="nope"), "host_types.0.nvme.0.model",
     "unknown NVMe controller (got 'nope'"),
    (lambda sc: sc["vms"][0]["virtualization"]["io"].update(disk="scsi"), "vms.0.virtualization.io.disk",
     "unknown disk I/O path (got 'scsi', expected one of: virtio-blk, nvme-passthrough)"),
    (lambda sc: sc.update(migration={"failover_net": "sriov"}), "migration.failover_net",
     "not a shared network path (got 'sriov', expected one of: emulated, virtio, vhost, vmbus, xen-netfront)"),
])
def test_device_rules_are_scenario_errors(change, path, message):
    sc = _nvme_scenario(2)
    change(sc)
    with pytest.raises(ScenarioError) as exc:
        consolidate.load_scenario(sc)
    assert any(p.path == path and message in p.message for p in exc.value.problems), str(exc.value)


def test_host_pools_count_every_pool_and_need_an_iommu():
    sc = consolidate.load_scenario(_nvme_scenario(2, controllers=3))
    ht = type(sc.host_types[0]).model_validate({**sc.host_types[0].model_dump(),
                                                "nics": [{"model": "intel-x540", "count": 2}]})
    vf, port, nvme = asg.host_pools(ht)
    assert (vf, port, nvme) == (2 * 2 * 32, 2 * 2, 3)  # two X540s: 2 ports x 32 VFs each
    assert asg.host_pool_models(ht) == ("intel-x540", "intel-x540", "intel-dc-p4500")
    no_iommu = type(ht).model_validate({**ht.model_dump(), "iommu": False})
    assert asg.host_pools(no_iommu) == (0, 0, 0)
