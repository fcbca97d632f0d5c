"""The datacenter as SimPy processes.

SimPy orders time; it never steps per VM. One accounting process ticks every `interval_s` and hands
the whole interval to array arithmetic (demand, CPU sharing, power, energy). Later capabilities
(consolidation rounds, migrations, host power transitions) join as further processes on the same
environment and change the placement arrays between ticks.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np
import simpy

from consolidate.engine.failover import Failover
from consolidate.errors import PlacementError, Problem
from consolidate.hardware.assignment import (COLD, DEVICE_CLASSES, FAILOVER, PINNED, POOL_NAMES, POOLS, VF,
                                             group_holding, host_pool_models, host_pools)
from consolidate.hardware.catalog import scenario_host_types
from consolidate.policies.placement import place
from consolidate.policies.registry import consolidation_policy, make_detector
from consolidate.costmodel.interval import COMPONENTS, IntervalOverhead, blend
from consolidate.costmodel.model import OverheadModel
from consolidate.scenario.model import HostType, Scenario
from consolidate.workload.build import Workload

Progress = Callable[[int, int], None]  # (intervals done, intervals total)


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


@dataclass
class RunRecord:
    """Raw per-interval arrays of one run, time-major; results.frames turns them into tables."""

    vm_host: np.ndarray  # (VMs,) host index, -1 = rejected
    cpu_demand_mips: np.ndarray  # (intervals, VMs) float32
    cpu_served_mips: np.ndarray  # (intervals, VMs) float32
    host_demand_mips: np.ndarray  # (intervals, hosts)
    host_served_mips: np.ndarray  # (intervals, hosts)
    host_on: np.ndarray  # (intervals, hosts) bool
    host_power_w: np.ndarray  # (intervals, hosts)
    host_vms: np.ndarray  # (intervals, hosts) int
    vm_host_series: np.ndarray | None = None  # (intervals, VMs) host at each interval's start
    migration_loss_mips: np.ndarray | None = None  # (intervals, VMs) demand lost to migration
    host_on_fraction: np.ndarray | None = None  # (intervals, hosts)
    host_overloaded: np.ndarray | None = None  # (intervals, hosts) share of the interval over capacity
    migrations: list | None = None  # MigrationRecord list when consolidation is on
    vm_retired: np.ndarray | None = None  # (VMs,) removed as CloudSim removes idle VMs (cloudsim_compat)
    drains: list | None = None  # DrainRecord list when the scenario has maintenance
    overhead: "OverheadRecord | None" = None  # when the scenario's overhead model is on
    failover: Any = None  # engine.failover.Failover when some VMs migrate by VF failover


@dataclass
class OverheadRecord:
    """The overhead model's output over a run: `series` holds every IntervalOverhead array with a leading
    intervals axis (float32 per VM), `reasons` names the exit-reason columns of `series.exits_per_s`."""

    reasons: list[str]
    series: IntervalOverhead
    cfg_net_path: list[str] = field(default_factory=list)  # I/O path of each VM (at its initial host)

    @classmethod
    def empty(cls, n_int: int, n_vm: int, reasons: list[str], n_reason_labels: int) -> "OverheadRecord":
        arrays = {}
        for f in fields(IntervalOverhead):
            if f.name in ("components_mips", "io_demand", "io_served"):
                keys = COMPONENTS if f.name == "components_mips" else DEVICE_CLASSES
                arrays[f.name] = {c: np.zeros((n_int, n_vm), np.float32) for c in keys}
            elif f.name == "exits_per_s":
                arrays[f.name] = np.zeros((n_int, n_vm, len(reasons)), np.float32)
            elif f.name == "reason_mips":
                arrays[f.name] = np.zeros((n_int, n_reason_labels))
            else:
                arrays[f.name] = np.zeros((n_int, n_vm), np.float32)
        return cls(reasons=reasons, series=IntervalOverhead(**arrays))

    def put(self, k: int, ov: IntervalOverhead) -> None:
        """Store interval k."""
        for f in fields(IntervalOverhead):
            value = getattr(ov, f.name)
            if isinstance(value, dict):
                for c, arr in value.items():
                    getattr(self.series, f.name)[c][k] = arr
            else:
                getattr(self.series, f.name)[k] = value


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

    def snapshot_fields(self, vm_host: np.ndarray, hosts: "HostTable", failover: Failover | None = None) -> dict:
        """The Snapshot fields that keep directly assigned devices within their pools and models. A failover VM
        needs no free VF to move (it can run paravirtual), but the VFs failover VMs hold are not free."""
        if not self.pools.any():
            return {}
        placed = vm_host >= 0
        models = np.where(self.pools & placed[:, None], hosts.pool_model[np.where(placed, vm_host, 0)], -1)
        need, cap = self.pools, hosts.pool_capacity
        if failover is not None:
            held = failover.attached & placed
            cap = cap.copy()
            cap[:, VF] -= np.bincount(vm_host[held], minlength=len(cap))
            need = need.copy()
            need[failover.vm, VF] = False
        return {"vm_pools": need, "vm_models": models, "host_pool_capacity": cap, "host_pool_model": hosts.pool_model,
                "pinned": self.pinned}


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
        util = wl.cpu_util.max(axis=0).astype(np.float64)
    size = util * nominal
    if om is not None:
        size = size[:, None] + om.sizing_mips(k, util, len(hosts.types))
    mem = wl.vms["memory_mb"].to_numpy(np.float64)
    devices = VmDevices.of(sc.vms, wl.vms["group_index"].to_numpy())
    policy = consolidation_policy(sc)
    if policy is not None and size.ndim == 1:
        # a consolidating datacenter places as it re-places: PABFD with the detector's overload check
        from consolidate.policies.consolidation import Snapshot, place_all

        V = len(size)
        snap = Snapshot(vm_host=np.full(V, -1), vm_dest=np.full(V, -1), vm_demand_mips=size,
                        vm_vcpus=wl.vms["vcpus"].to_numpy(np.float64), vm_ram_mb=mem,
                        vm_history_mips=np.zeros((0, V)), host_capacity_mips=hosts.capacity_mips,
                        host_mips_per_core=hosts.mips_per_core, host_memory_mb=hosts.memory_mb,
                        host_type=hosts.host_type, curves_w=hosts.curves_w, host_migration_intervals=np.zeros(len(hosts)),
                        stale_utilization=sc.cloudsim_compat, **devices.snapshot_fields(np.full(V, -1), hosts))
        vm_host = place_all(snap, policy.detector, size)
    else:
        vm_host = place(sc.placement.policy, size, mem, hosts.capacity_mips * sc.cpu_overcommit, hosts.memory_mb,
                        host_capacity_mips=hosts.capacity_mips, curves_w=hosts.curves_w, host_type=hosts.host_type,
                        vm_pools=devices.pools, host_pools=hosts.pool_capacity)
    if sc.on_unplaceable == "error" and (vm_host < 0).any():
        lost = np.flatnonzero(vm_host < 0)
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
                                    f"({len(lost)} of {len(vm_host)} in all)"))
        raise PlacementError(problems)
    return vm_host


class Datacenter:
    """Hosts, VMs, the consolidation manager and live migrations of one run on a SimPy environment.

    One process ticks every interval: it accounts the interval that just ended (with the migrations that ran
    in it), then, if consolidation is on, plans a round and starts the migrations. Each migration is a process
    of its own (a fixed delay, or pre-copy rounds over the network); nothing steps per VM.
    """

    def __init__(self, sc: Scenario, wl: Workload, hosts: HostTable, vm_host: np.ndarray,
                 progress: Progress | None = None, om: OverheadModel | None = None):
        self.sc, self.wl, self.hosts, self.om = sc, wl, hosts, om
        self.vm_host = vm_host.copy()
        self.vm_dest = np.full(len(vm_host), -1, dtype=np.int64)
        # CloudSim removes a VM as "completed" the first time it asks for no CPU (HostDynamicWorkload
        # .getCompletedVms); cloudsim_compat reproduces that, and the VM stays gone
        self.retired = np.zeros(len(vm_host), bool)
        self.progress = progress
        self.env = simpy.Environment()
        n_int, n_vm, n_h = sc.n_intervals, len(wl.vms), len(hosts)
        self.nominal_mips = wl.nominal_mips
        self.vcpus = wl.vms["vcpus"].to_numpy(np.float64)
        self.ram_mb = wl.vms["memory_mb"].to_numpy(np.float64)
        self.devices = VmDevices.of(sc.vms, wl.vms["group_index"].to_numpy())
        self.failover = Failover(self.devices.failover, self.devices.pools[:, VF], vm_host, hosts.vf_capacity,
                                 sc.migration.failover_gap_s) if self.devices.failover.any() else None
        self.rec = RunRecord(
            vm_host=vm_host.copy(),
            cpu_demand_mips=np.empty((n_int, n_vm), np.float32),
            cpu_served_mips=np.empty((n_int, n_vm), np.float32),
            host_demand_mips=np.empty((n_int, n_h)),
            host_served_mips=np.empty((n_int, n_h)),
            host_on=np.empty((n_int, n_h), bool),
            host_power_w=np.empty((n_int, n_h)),
            host_vms=np.empty((n_int, n_h), np.int32),
            vm_host_series=np.empty((n_int, n_vm), np.int32),
            migration_loss_mips=np.zeros((n_int, n_vm), np.float32),
            host_on_fraction=np.empty((n_int, n_h), np.float32),
            host_overloaded=np.empty((n_int, n_h), np.float32),
        )
        if om is not None:
            from consolidate.costmodel.tables import REASON_LABELS

            self.rec.overhead = OverheadRecord.empty(n_int, n_vm, om.reasons, len(REASON_LABELS))
            cfg = om.configs_for(vm_host, hosts.host_type)
            net = om.tables.io[DEVICE_CLASSES.index("net")]
            self.rec.overhead.cfg_net_path = [net.path[c] if c >= 0 else "" for c in cfg]
        self.policy = consolidation_policy(sc)
        self.draining = np.zeros(n_h, bool)
        if self.policy is not None or sc.maintenance:
            from consolidate import rng
            from consolidate.engine.migration import Migrator

            # without a consolidation policy, drains place VMs wherever they fit (up to full capacity)
            self.detector = self.policy.detector if self.policy else make_detector("thr", 1.0)
            self.rng = rng.stream(sc.seed, rng.POLICY)
            length = sc.consolidation.history_intervals if sc.consolidation is not None else 30
            self.history = np.full((length, n_vm), np.nan)
            self.migrator = Migrator(self)
            for i, d in enumerate(sc.maintenance):
                self.env.process(self.migrator.drain_at(i, d))
        else:
            self.migrator = None
        self._demand = np.zeros(n_vm)
        self.env.process(self._ticks())

    def vm_cap_mips(self, vm_host: np.ndarray) -> np.ndarray:
        """A vCPU runs on one core at a time: a VM can never use more than min(vCPUs, cores) cores."""
        h = np.where(vm_host >= 0, vm_host, 0)
        return np.minimum(self.vcpus, self.hosts.cores[h]) * self.hosts.mips_per_core[h]

    def _ticks(self):
        sc, dt = self.sc, self.sc.interval_s
        pending = None
        for k in range(sc.n_intervals):
            if pending is not None:
                self._account(*pending)
            util = self.wl.cpu_util[k].astype(np.float64)
            if self.sc.cloudsim_compat and k >= 1:
                # CloudSim's clock runs 0.1 s past each interval edge and interpolates the trace, so a VM asks
                # for exactly nothing only when this sample and the next are both zero; its first look is one
                # interval after the VMs start (the first update), so nothing retires at time 0
                nxt = self.wl.cpu_util[min(k + 1, sc.n_intervals - 1)]
                done = (util == 0) & (nxt == 0) & ~self.retired & (self.vm_host >= 0) & (self.vm_dest < 0)
                self.retired |= done
                self.vm_host[done] = -1
                util = np.where(self.retired, 0.0, util)
            guest = util * self.nominal_mips
            if self.failover is not None:
                self.failover.replug_waiting(self.env.now, self.vm_host, self.vm_dest)
            ov = ov_pv = now = None
            if self.om is not None:
                ov = now = self.om.at(k, util, self.vm_host, self.hosts.host_type, self.hosts.cores)
                if self.failover is not None:
                    # the same interval with every failover VM on its paravirtual NIC: blended by the share of
                    # the interval each one really spends without its VF, known when the interval is accounted
                    ov_pv = self.om.at(k, util, self.vm_host, self.hosts.host_type, self.hosts.cores,
                                       paravirtual=self.failover.vm)
                    now = blend(ov, ov_pv, self.failover.paravirtual_now())
            own = guest + (now.overhead_mips if now is not None else 0.0)
            backend = now.backend_mips if now is not None else np.zeros(len(guest))
            if self.migrator is not None:
                self.history = np.roll(self.history, -1, axis=0)
                self.history[-1] = own + backend
                self._demand = own + backend
                if k >= 1 and self.policy is not None:
                    self.migrator.consolidate(own + backend)
                if self.draining.any():
                    self.migrator.retry_drains()
            pending = (k, guest, ov, ov_pv, self.vm_host.copy(), self.env.now)
            if self.progress is not None:
                self.progress(k + 1, sc.n_intervals)
            yield self.env.timeout(dt)
        if pending is not None:
            self._account(*pending)

    def _account(self, k, guest, ov, ov_pv, vm_host, t0):
        from consolidate.engine.accounting import account

        sc, hosts, rec = self.sc, self.hosts, self.rec
        gap = None
        if self.failover is not None:
            share, gap = self.failover.interval(t0, t0 + sc.interval_s)
            if ov_pv is not None:
                ov = blend(ov, ov_pv, share)
        if ov is not None:
            rec.overhead.put(k, ov)
        own = guest + (ov.overhead_mips if ov is not None else 0.0)
        backend = ov.backend_mips if ov is not None else np.zeros(len(guest))
        windows = self.migrator.windows(t0, t0 + sc.interval_s, own) if self.migrator is not None else []
        acc = account(sc.interval_s, own, backend, vm_host, self.vm_cap_mips(vm_host), hosts.capacity_mips,
                      hosts.curves_w, hosts.host_type, windows, sc.migration.cpu_degradation,
                      sc.power_off_idle_hosts, sc.cloudsim_compat,
                      # CloudSim's SLATAH convention belongs to its own (fixed) migration model
                      migration_violates=sc.cloudsim_compat and sc.migration.model == "fixed",
                      gap_s=gap)
        rec.cpu_demand_mips[k] = guest
        rec.cpu_served_mips[k] = acc.vm_served_mips
        rec.host_demand_mips[k] = acc.host_request_mips
        rec.host_served_mips[k] = acc.host_served_mips
        rec.host_on[k] = acc.host_on_fraction > 0
        rec.host_on_fraction[k] = acc.host_on_fraction
        rec.host_overloaded[k] = acc.host_overloaded
        # CloudSim integrates energy from its first host update, one interval in: the frame before it starts from
        # a utilisation of zero, which it prices at nothing
        rec.host_power_w[k] = 0.0 if sc.cloudsim_compat and k == 0 else acc.host_power_w
        rec.host_vms[k] = acc.host_vms
        rec.vm_host_series[k] = vm_host
        rec.migration_loss_mips[k] = acc.vm_migration_loss_mips

    def run(self) -> RunRecord:
        """Run to duration_s and return the raw record."""
        self.env.run(until=self.sc.duration_s + 1e-9)
        self.rec.vm_host = self.vm_host.copy()
        self.rec.vm_retired = self.retired.copy()
        if self.failover is not None:
            self.failover.close(self.env.now)
            self.rec.failover = self.failover
        if self.migrator is not None:
            self.rec.migrations = self.migrator.records
            self.rec.drains = self.migrator.drains
        return self.rec
