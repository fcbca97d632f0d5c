"""The initial placement of a run: every VM placed by the scenario's policy before time starts, and a clear error
naming every VM that fits no host."""
from __future__ import annotations

import numpy as np

from consolidate.costmodel.model import OverheadModel
from consolidate.engine.state import HostTable, VmDevices
from consolidate.errors import PlacementError, Problem
from consolidate.hardware.assignment import POOL_NAMES
from consolidate.policies.consolidation import Snapshot, place_all
from consolidate.policies.placement import place
from consolidate.policies.registry import consolidation_policy
from consolidate.scenario.model import Scenario
from consolidate.workload import grid
from consolidate.workload.build import Workload


def initial_placement(sc: Scenario, wl: Workload, hosts: HostTable, om: OverheadModel | None = None) -> np.ndarray:
    """Place every VM by the scenario's policy; returns host index per VM (-1 = rejected).

    With the overhead model, a VM's size on each host type is its demand plus the overhead and backend
    cycles it would cost there. Raises PlacementError naming every VM that fits no host unless the scenario
    asks to record rejections.
    """
    nominal = wl.nominal_mips
    basis = "nominal" if sc.cloudsim_compat else sc.placement.cpu_basis  # CloudSim sizes a new VM at full MIPS
    k: int | None = None
    if basis == "nominal" or wl.cpu_util.shape[0] == 0:
        util = np.ones(len(nominal))
    elif basis == "initial_demand":
        util, k = wl.cpu_util[0].astype(np.float64), 0
    else:
        util = grid.peak(wl.cpu_util).astype(np.float64)  # a spooled grid's, taken as it was written
    size = util * nominal
    if om is not None:
        size = size[:, None] + om.sizing_mips(k, util, len(hosts.types))
    mem = wl.memory_need_mb(sc.memory_basis)
    devices = VmDevices.of(sc.vms, wl.vms["group_index"].to_numpy())
    if wl.lifecycles:
        # only the VMs there at t = 0; the others are placed when they arrive (engine/lifecycle.py)
        here = np.flatnonzero((wl.start_s <= 0) & (wl.end_s > 0))
        out = np.full(len(size), -1, dtype=np.int64)
        # placing reads only the VM table: the sub-workload needs no grid of its own
        sub = Workload(vms=wl.vms.iloc[here].reset_index(drop=True), cpu_util=np.zeros((0, len(here)), np.float32))
        out[here] = _place(sc, sub, hosts, size[here], mem[here],
                           VmDevices.of(sc.vms, sub.vms["group_index"].to_numpy()))
        lost = here[out[here] < 0]
        if sc.on_unplaceable == "error" and lost.size:
            _unplaceable(sc, wl, hosts, size, devices, lost)
        return out
    vm_host = _place(sc, wl, hosts, size, mem, devices)
    if sc.on_unplaceable == "error" and (vm_host < 0).any():
        _unplaceable(sc, wl, hosts, size, devices, np.flatnonzero(vm_host < 0))
    return vm_host


def _place(sc: Scenario, wl: Workload, hosts: HostTable, size: np.ndarray, mem: np.ndarray, devices: VmDevices
           ) -> np.ndarray:
    policy = consolidation_policy(sc)
    if policy is not None and size.ndim == 1:
        # a consolidating datacenter places as it re-places: PABFD with the detector's overload check
        V = len(size)
        snap = Snapshot(vm_host=np.full(V, -1), vm_dest=np.full(V, -1), vm_demand_mips=size,
                        vm_vcpus=wl.vms["vcpus"].to_numpy(np.float64), vm_ram_mb=mem,
                        vm_history_mips=np.zeros((0, V)), host_capacity_mips=hosts.capacity_mips,
                        host_mips_per_core=hosts.mips_per_core, host_memory_mb=hosts.memory_mb,
                        host_type=hosts.host_type, curves_w=hosts.curves_w, host_migration_intervals=np.zeros(len(hosts)),
                        stale_utilization=sc.cloudsim_compat, compat=sc.cloudsim_compat,
                        **devices.snapshot_fields(np.full(V, -1), hosts))
        vm_host = place_all(snap, policy.detector, size)
    else:
        vm_host = place(sc.placement.policy, size, mem, hosts.capacity_mips * sc.cpu_overcommit, hosts.memory_mb,
                        host_capacity_mips=hosts.capacity_mips, curves_w=hosts.curves_w, host_type=hosts.host_type,
                        vm_pools=devices.pools, host_pools=hosts.pool_capacity)
    return vm_host


def _unplaceable(sc: Scenario, wl: Workload, hosts: HostTable, size: np.ndarray, devices: VmDevices,
                 lost: np.ndarray) -> None:
    """Raise PlacementError naming the VMs in `lost` (at most 20) and why each fits no host."""
    free_mem = hosts.memory_mb.max()
    problems = []
    for v in lost[:20]:
        row = wl.vms.iloc[v]
        need = size[v].min() if size.ndim == 2 else size[v]
        held = np.flatnonzero(devices.pools[v])
        kind = " and ".join(POOL_NAMES[p] for p in held)
        short = [p for p in held if hosts.pool_capacity[:, p].sum() < devices.pools[:, p].sum()]
        if short:
            p = short[0]
            why = (f"needs {POOL_NAMES[p]}; the hosts have {int(hosts.pool_capacity[:, p].sum())} for "
                   f"{int(devices.pools[:, p].sum())} such VMs")
        elif row.memory_mb > free_mem:
            why = f"needs {row.memory_mb} MB but the largest host has {free_mem:g} MB"
        else:
            why = (f"needs {need:.0f} MIPS, {row.memory_mb} MB" + (f" and {kind}" if kind else "")
                   + "; no host has that much left")
        problems.append(Problem(sc.file, f"vms.{row.group_index}",
                                f"VM {row['name']!r} (type {row.vm_type}) fits no host: {why} "
                                "(expected more or larger hosts, or on_unplaceable: reject)"))
    if len(lost) > 20:
        problems.append(Problem(sc.file, "vms", f"... and {len(lost) - 20} more VMs fit no host "
                                f"({len(lost)} of {len(size)} in all)"))
    raise PlacementError(problems)
