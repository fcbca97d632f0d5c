"""The datacenter's state during a run: the hosts (HostTable), what each VM holds (VmDevices) and where every VM
is (DatacenterState). The other parts of the engine read and change placement only through DatacenterState."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consolidate.engine.failover import Failover
from consolidate.hardware.assignment import (COLD, FAILOVER, PINNED, POOLS, VF, group_holding, host_pool_models,
                                             host_pools)
from consolidate.hardware.catalog import scenario_host_types
from consolidate.policies.consolidation import Snapshot
from consolidate.scenario.model import HostType, Scenario
from consolidate.workload.build import Workload


@dataclass
class HostTable:
    """The scenario's hosts, flattened: one entry per host, in the order the scenario lists its groups."""

    type_names: list[str]  # per host type index
    types: list[HostType]  # per host type index
    host_type: np.ndarray  # int per host
    cores: np.ndarray
    mips_per_core: np.ndarray
    capacity_mips: np.ndarray
    memory_mb: np.ndarray
    curves_w: np.ndarray  # (types, 11)
    pool_capacity: np.ndarray | None = None  # (hosts, POOLS) devices each host offers for direct assignment
    pool_model: np.ndarray | None = None  # (hosts, POOLS) index into device_models of the pool's model, -1 none
    device_models: tuple[str, ...] = ()

    @property
    def vf_capacity(self) -> np.ndarray:
        """(hosts,) SR-IOV VFs over all NIC ports (0 without an IOMMU)."""
        return self.pool_capacity[:, VF]

    @classmethod
    def from_scenario(cls, sc: Scenario) -> "HostTable":
        known = scenario_host_types(sc)
        names = list(dict.fromkeys(g.type for g in sc.hosts))
        types_ = [known[n] for n in names]
        ht = np.concatenate([np.full(g.count, names.index(g.type), dtype=np.int32) for g in sc.hosts])
        if sc.host_order == "interleaved":
            # the k-th host of each group shares rank k; a stable sort by rank takes the groups in turn
            rank = np.concatenate([np.arange(g.count) for g in sc.hosts])
            ht = ht[np.argsort(rank, kind="stable")]
        col = lambda f: np.array([f(t) for t in types_], dtype=float)[ht]  # noqa: E731
        bound = [host_pool_models(t) for t in types_]
        models = tuple(dict.fromkeys(m for b in bound for m in b if m is not None))
        pools = np.array([host_pools(t) for t in types_], dtype=np.int64).reshape(len(types_), len(POOLS))
        pool_model = np.array([[models.index(m) if m is not None else -1 for m in b] for b in bound],
                              dtype=np.int64).reshape(len(types_), len(POOLS))
        return cls(type_names=names, types=types_, host_type=ht, cores=col(lambda t: t.cores),
                   mips_per_core=col(lambda t: t.mips_per_core), capacity_mips=col(lambda t: t.capacity_mips),
                   memory_mb=col(lambda t: t.memory_mb),
                   curves_w=np.array([t.power_curve_w() for t in types_], dtype=float),
                   pool_capacity=pools[ht], pool_model=pool_model[ht], device_models=models)

    def __len__(self) -> int:
        return len(self.host_type)


@dataclass(frozen=True)
class VmDevices:
    """Per VM: the device pools it holds and how it moves, from its group (hardware.assignment)."""

    pools: np.ndarray  # (VMs, POOLS) bool
    pinned: np.ndarray  # (VMs,) holds devices and is never migrated
    cold: np.ndarray  # (VMs,) holds devices and moves by cold migration
    failover: np.ndarray  # (VMs,) holds a VF and moves live by VF failover

    @classmethod
    def of(cls, groups, group_index: np.ndarray) -> "VmDevices":
        held = [group_holding(g) for g in groups]
        pools = np.zeros((len(held), len(POOLS)), bool)
        for gi, h in enumerate(held):
            pools[gi, list(h.pools)] = True
        mobility = np.array([h.mobility or "" for h in held], dtype=object)
        g = np.asarray(group_index, dtype=np.int64)
        return cls(pools=pools[g].reshape(len(g), len(POOLS)), pinned=(mobility == PINNED)[g].astype(bool),
                   cold=(mobility == COLD)[g].astype(bool), failover=(mobility == FAILOVER)[g].astype(bool))

    def snapshot_fields(self, vm_host: np.ndarray, hosts: "HostTable", failover: Failover | None = None,
                        home: np.ndarray | None = None) -> dict:
        """The Snapshot fields that keep directly assigned devices within their pools and models. A failover VM
        needs no free VF to move (it can run paravirtual), but the VFs failover VMs hold are not free. A VM that
        is down (its host failed) stays bound to the models of `home`, the host it last ran on."""
        if not self.pools.any():
            return {}
        placed = vm_host >= 0
        bound_to = vm_host if home is None else np.where(placed, vm_host, home)
        models = np.where(self.pools & (bound_to >= 0)[:, None], hosts.pool_model[np.where(bound_to >= 0, bound_to, 0)],
                          -1)
        need, cap = self.pools, hosts.pool_capacity
        if failover is not None:
            held = failover.attached & placed
            cap = cap.copy()
            cap[:, VF] -= np.bincount(vm_host[held], minlength=len(cap))
            need = need.copy()
            need[failover.vm, VF] = False
        return {"vm_pools": need, "vm_models": models, "host_pool_capacity": cap, "host_pool_model": hosts.pool_model,
                "pinned": self.pinned}


class DatacenterState:
    """Where every VM is and where it is going, the hosts being drained, and what each VM holds.

    `vm_host` is the host a VM runs on (-1: rejected or retired), `vm_dest` the destination of a VM in migration
    (-1: none). Migrations change them through begin_move/end_move; consolidation and drains read them through
    snapshot()."""

    def __init__(self, sc: Scenario, wl: Workload, hosts: HostTable, vm_host: np.ndarray):
        self.hosts = hosts
        self.vm_host = vm_host.copy()
        self.vm_dest = np.full(len(vm_host), -1, dtype=np.int64)
        # CloudSim removes a VM as "completed" the first time it asks for no CPU (HostDynamicWorkload
        # .getCompletedVms); cloudsim_compat reproduces that, and the VM stays gone
        self.retired = np.zeros(len(vm_host), bool)
        self.draining = np.zeros(len(hosts), bool)
        self.failed = np.zeros(len(hosts), bool)  # hosts down after a failure, until repaired
        self.home = vm_host.copy()  # the host each VM last ran on (device models, an NVMe VM's data)
        self.vcpus = wl.vms["vcpus"].to_numpy(np.float64)
        self.ram_mb = wl.vms["memory_mb"].to_numpy(np.float64)
        self.devices = VmDevices.of(sc.vms, wl.vms["group_index"].to_numpy())
        self.failover = Failover(self.devices.failover, self.devices.pools[:, VF], vm_host, hosts.vf_capacity,
                                 sc.migration.failover_gap_s) if self.devices.failover.any() else None
        self._compat = sc.cloudsim_compat
        # packing by used memory (memory_basis: used) tells the policies each VM's need; None: its provisioned RAM
        self.mem_need_mb = wl.memory_need_mb("used") if sc.memory_basis == "used" else None
        self.nominal_mips = wl.nominal_mips
        # the order VMs joined their hosts (CloudSim's host VM lists): created in index order, then each arrival
        self.joined = np.arange(len(vm_host), dtype=np.int64)
        self._arrivals = len(vm_host)

    def vm_cap_mips(self, vm_host: np.ndarray) -> np.ndarray:
        """MIPS each VM can use at most on its host: a vCPU runs on one core at a time, so min(vCPUs, cores)."""
        h = np.where(vm_host >= 0, vm_host, 0)
        return np.minimum(self.vcpus, self.hosts.cores[h]) * self.hosts.mips_per_core[h]

    def retire(self, done: np.ndarray) -> None:
        """Remove the VMs in `done` (bool per VM) for the rest of the run."""
        self.retired |= done
        self.vm_host[done] = -1

    def begin_move(self, vm: int, destination: int) -> None:
        self.vm_dest[vm] = destination

    def end_move(self, vm: int, destination: int) -> None:
        """The VM runs on `destination` from now on."""
        self.vm_host[vm] = destination
        self.home[vm] = destination
        self.vm_dest[vm] = -1
        self.joined[vm] = self._arrivals
        self._arrivals += 1

    def end_moves(self, vms: np.ndarray, destinations: np.ndarray) -> None:
        """end_move for each of `vms` (distinct), in order."""
        self.vm_host[vms] = destinations
        self.home[vms] = destinations
        self.vm_dest[vms] = -1
        self.joined[vms] = np.arange(self._arrivals, self._arrivals + len(vms))
        self._arrivals += len(vms)

    def cancel_move(self, vm: int) -> None:
        """The VM's migration was aborted: it is going nowhere (its destination's memory is free again)."""
        self.vm_dest[vm] = -1

    def arrive(self, vm: int, host: int, now: float) -> None:
        """A VM that arrives (or leaves the queue) starts on `host` at `now` (s)."""
        self.vm_host[vm] = host
        self.home[vm] = host
        self.joined[vm] = self._arrivals
        self._arrivals += 1
        if self.failover is not None:
            self.failover.restart(vm, host, now, self.vm_host, self.vm_dest)

    def depart(self, vm: int) -> None:
        """The VM's life is over: its CPU, memory and devices are free from now on (a migration of it must have
        been cancelled first)."""
        if self.failover is not None and self.vm_host[vm] >= 0:
            self.failover.lose(np.array([vm]))
        self.vm_host[vm] = -1
        self.vm_dest[vm] = -1

    def fail_host(self, host: int) -> np.ndarray:
        """The host goes down: the VMs on it stop. Returns them (VM indices)."""
        self.failed[host] = True
        down = np.flatnonzero(self.vm_host == host)
        self.vm_host[down] = -1
        if self.failover is not None:
            self.failover.lose(down)
        return down

    def repair_host(self, host: int) -> None:
        """The host is back, empty."""
        self.failed[host] = False

    def restart(self, vm: int, host: int) -> None:
        """A VM whose host failed boots on `host`."""
        self.vm_host[vm] = host
        self.home[vm] = host

    @property
    def unavailable(self) -> np.ndarray:
        """(hosts,) hosts that take no VM: being drained or down."""
        return self.draining | self.failed

    def snapshot(self, demand_mips: np.ndarray, history_mips: np.ndarray,
                 migration_intervals: np.ndarray) -> Snapshot:
        """What a consolidation round or a drain sees now: demand (MIPS per VM), its history (intervals, VMs) and
        each host's longest migration in scheduling intervals."""
        hosts = self.hosts
        return Snapshot(vm_host=self.vm_host, vm_dest=self.vm_dest, vm_demand_mips=demand_mips, vm_vcpus=self.vcpus,
                        vm_ram_mb=self.ram_mb, vm_history_mips=history_mips, host_capacity_mips=hosts.capacity_mips,
                        host_mips_per_core=hosts.mips_per_core, host_memory_mb=hosts.memory_mb,
                        host_type=hosts.host_type, curves_w=hosts.curves_w,
                        host_migration_intervals=migration_intervals,
                        # CloudSim's PlanetLab VMs request no RAM once created (UtilizationModelNull)
                        vm_mem_need_mb=np.zeros_like(self.ram_mb) if self._compat else self.mem_need_mb,
                        stale_utilization=self._compat, host_unavailable=self.unavailable, compat=self._compat,
                        vm_mips=self.nominal_mips, vm_joined=self.joined,
                        **self.devices.snapshot_fields(self.vm_host, hosts, self.failover, self.home))
