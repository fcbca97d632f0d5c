"""Live migrations as SimPy processes, and the consolidation manager that starts them.

`fixed` (CloudSim's model): the migration takes memory / (bandwidth_share x the destination's NIC rate); no
network, no downtime. `precopy`: rounds over the network (engine/flows.py over hardware/topology.py), each round a transfer that
shares every link it crosses max-min fairly with the other migrations in flight; the rates are recomputed
whenever a transfer starts or ends. Memory stays reserved on the destination from start to end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from consolidate.engine.accounting import MigrationWindow
from consolidate.engine.flows import Flows
from consolidate.hardware.topology import Network, build_topology
from consolidate.policies.consolidation import Snapshot, plan_round
from consolidate.policies.precopy import next_round
from consolidate.units import BYTES_PER_MB, CLOUDSIM_BYTES_PER_MB

MB = BYTES_PER_MB


@dataclass
class MigrationRecord:
    """One migration, for the `migrations` result frame."""

    vm: int
    source: int
    destination: int
    reason: str
    start_s: float
    end_s: float = math.inf
    rounds: int = 0
    bytes: float = 0.0
    downtime_s: float = 0.0
    path: str = ""
    queued_s: float = 0.0  # waited for a free migration slot on either host
    service_gap_s: float = 0.0  # VF failover: unplug at the start, re-plug at the end if a VF was free


@dataclass
class DrainRecord:
    """One maintenance drain: which hosts, which VMs had to leave, which could not and why."""

    index: int
    at_s: float
    hosts: list[int]
    moved: dict  # vm -> MigrationRecord
    stuck: dict  # vm -> reason (the latest)

    @property
    def evacuation_s(self) -> float:
        """From the drain to the end of its last migration (NaN if none finished)."""
        ends = [r.end_s for r in self.moved.values() if math.isfinite(r.end_s)]
        return max(ends) - self.at_s if ends else float("nan")


class Migrator:
    """Plans consolidation rounds and runs their migrations for a Datacenter."""

    def __init__(self, dc):
        self.dc = dc
        sc = dc.sc
        self.m = sc.migration
        self.records: list[MigrationRecord] = []
        self.unaccounted: list[MigrationRecord] = []  # may still overlap an interval not yet accounted
        self.active: dict[int, MigrationRecord] = {}  # by VM
        self.slots = None
        if self.m.max_concurrent_per_host is not None:
            self.slots = [simpy.Resource(dc.env, capacity=self.m.max_concurrent_per_host) for _ in range(len(dc.hosts))]
        self.flows = None
        if self.m.model == "precopy":
            bps = [dc.hosts.types[t].network_bps for t in dc.hosts.host_type]
            self.flows = Flows(dc.env, Network(build_topology(sc.network, bps)), self.m.bandwidth_share)
        self.host_bps = np.array([t.network_bps for t in dc.hosts.types])[dc.hosts.host_type]
        self.drains: list[DrainRecord] = []
        # the fixed model counts memory in MiB like the rest, except when it reproduces CloudSim's arithmetic
        self.fixed_bytes_per_mb = CLOUDSIM_BYTES_PER_MB if sc.cloudsim_compat else BYTES_PER_MB

    def _snapshot(self, demand_mips: np.ndarray) -> Snapshot:
        dc = self.dc
        sc, hosts = dc.sc, dc.hosts
        # the longest migration of each host's VMs, in scheduling intervals (LR and LRR extrapolate by it)
        secs = dc.ram_mb * MB * 8 / (self.host_bps[np.where(dc.vm_host >= 0, dc.vm_host, 0)])
        longest = np.zeros(len(hosts))
        placed = dc.vm_host >= 0
        np.maximum.at(longest, dc.vm_host[placed], secs[placed])
        snap = Snapshot(vm_host=dc.vm_host, vm_dest=dc.vm_dest, vm_demand_mips=demand_mips, vm_vcpus=dc.vcpus,
                        vm_ram_mb=dc.ram_mb, vm_history_mips=dc.history, host_capacity_mips=hosts.capacity_mips,
                        host_mips_per_core=hosts.mips_per_core, host_memory_mb=hosts.memory_mb,
                        host_type=hosts.host_type, curves_w=hosts.curves_w,
                        host_migration_intervals=np.ceil(longest / sc.interval_s),
                        # CloudSim's PlanetLab VMs request no RAM once created (UtilizationModelNull)
                        vm_mem_need_mb=np.zeros_like(dc.ram_mb) if sc.cloudsim_compat else None,
                        stale_utilization=sc.cloudsim_compat, host_unavailable=dc.draining,
                        **dc.devices.snapshot_fields(dc.vm_host, hosts, dc.failover))
        return snap

    def _start(self, mv, batch: list | None = None) -> MigrationRecord:
        """Start a migration: its own process, or, for a plain fixed-delay one when `batch` is given, an entry
        (end time, record) that one process completes with the rest of its round."""
        dc = self.dc
        rec = MigrationRecord(vm=mv.vm, source=mv.source, destination=mv.destination, reason=mv.reason,
                              start_s=dc.env.now)
        dc.vm_dest[mv.vm] = mv.destination
        self.records.append(rec)
        self.unaccounted.append(rec)
        self.active[mv.vm] = rec
        if batch is not None and not dc.devices.cold[mv.vm]:
            batch.append((dc.env.now + self._fixed_s(rec), rec))
        else:
            dc.env.process(self._run(rec))
        return rec

    def consolidate(self, demand_mips: np.ndarray) -> None:
        """Plan one round on the current state and start its migrations."""
        dc = self.dc
        snap = self._snapshot(demand_mips)
        # fixed delays with nothing to wait for or share (no slots, no VF to re-plug) end at known times: one
        # process per round completes them in order, instead of a process per migration
        batch = [] if self.m.model == "fixed" and self.slots is None and dc.failover is None else None
        for mv in plan_round(snap, dc.detector, dc.policy.selector, dc.rng, dc.sc.consolidation.underload):
            self._start(mv, batch)
        if batch:
            dc.env.process(self._complete_in_order(batch))

    def _complete_in_order(self, batch: list):
        env = self.dc.env
        for end, rec in sorted(batch, key=lambda e: e[0]):  # stable: same end, same order as started
            if end > env.now:
                yield env.timeout(end - env.now)
            self._fixed_done(rec)
            self._complete(rec)

    def _fixed_s(self, rec: MigrationRecord) -> float:
        # CloudSim: memory over half the destination's bandwidth
        return self.dc.ram_mb[rec.vm] * self.fixed_bytes_per_mb * 8 / (self.host_bps[rec.destination]
                                                                       * self.m.bandwidth_share)

    def _fixed_done(self, rec: MigrationRecord) -> None:
        rec.rounds, rec.bytes = 1, self.dc.ram_mb[rec.vm] * self.fixed_bytes_per_mb

    def _complete(self, rec: MigrationRecord) -> None:
        """The VM is on its destination from now on."""
        dc = self.dc
        rec.end_s = dc.env.now
        dc.vm_host[rec.vm] = rec.destination
        dc.vm_dest[rec.vm] = -1
        if dc.failover is not None:
            rec.service_gap_s += dc.failover.plug(rec.vm, rec.destination, dc.env.now, dc.vm_host, dc.vm_dest)
        self.active.pop(rec.vm, None)

    def drain_at(self, index: int, drain):
        """Process: at the drain's time, stop the hosts taking VMs and move every VM off them."""
        dc = self.dc
        yield dc.env.timeout(drain.at_s)
        H = len(dc.hosts)
        if drain.hosts is not None:
            hosts = sorted(set(drain.hosts))
        elif drain.host_type is not None:
            hosts = np.flatnonzero(np.array(dc.hosts.type_names)[dc.hosts.host_type] == drain.host_type).tolist()
        else:
            per = dc.sc.network.hosts_per_rack
            hosts = list(range(drain.rack * per, min(H, (drain.rack + 1) * per)))
        dc.draining[hosts] = True
        self.drains.append(DrainRecord(index=index, at_s=dc.env.now, hosts=hosts, moved={}, stuck={}))
        self.retry_drains()

    def retry_drains(self) -> None:
        """Move what can leave the draining hosts now (called at each drain and each interval after)."""
        from consolidate.policies.consolidation import plan_drain

        dc = self.dc
        moves, stuck = plan_drain(self._snapshot(dc._demand), dc.detector, dc.draining)
        for mv in moves:
            rec = self._start(mv)
            for d in self.drains:
                if mv.source in d.hosts:
                    d.moved[mv.vm] = rec
                    d.stuck.pop(mv.vm, None)
        for v, why in stuck:
            for d in self.drains:
                if dc.vm_host[v] in d.hosts:
                    d.stuck[v] = why

    def _run(self, rec: MigrationRecord):
        dc = self.dc
        requested = dc.env.now
        reqs = []
        if self.slots is not None:
            reqs = [self.slots[rec.source].request(), self.slots[rec.destination].request()]
            yield dc.env.all_of(reqs)
            rec.start_s = dc.env.now
            rec.queued_s = rec.start_s - requested
        if dc.failover is not None:  # the VF goes when the transfer starts, not while the move waits its turn
            rec.service_gap_s += dc.failover.unplug(rec.vm, dc.env.now)
        if dc.devices.cold[rec.vm]:
            # cold: stop the VM, copy its memory at the migration share of the NIC, boot it at the destination
            seconds = dc.ram_mb[rec.vm] * MB * 8 / (self.host_bps[rec.destination] * self.m.bandwidth_share)
            yield dc.env.timeout(seconds + self.m.cold_boot_s)
            rec.rounds, rec.bytes = 1, dc.ram_mb[rec.vm] * MB
            rec.downtime_s = seconds + self.m.cold_boot_s
            rec.reason += " (cold)"
        elif self.m.model == "fixed":
            yield dc.env.timeout(self._fixed_s(rec))
            self._fixed_done(rec)
        else:
            yield from self._precopy(rec)
        self._complete(rec)
        for r, res in zip(reqs, ([self.slots[rec.source], self.slots[rec.destination]] if reqs else [])):
            res.release(r)

    def _dirty_bytes_per_s(self, vm: int) -> float:
        dc = self.dc
        k = min(int(dc.env.now // dc.sc.interval_s), dc.sc.n_intervals - 1)
        col = dc.wl.extra.get("dirty_pages_per_s")
        if col is not None and not np.isnan(col[k, vm]):
            pages = float(col[k, vm])
        else:
            pages = self.m.dirty_pages_per_s_at_full_load * float(dc.wl.cpu_util[k, vm]) * dc.vcpus[vm]
        return pages * self.m.page_bytes

    def _precopy(self, rec: MigrationRecord):
        dc, m = self.dc, self.m
        memory = dc.ram_mb[rec.vm] * MB
        cap = memory * m.working_set_fraction
        rec.path = " ".join(f"{a}>{b}" for a, b in self.flows.net.path(rec.source, rec.destination))
        volume, rounds, sent = memory, 0, 0.0
        while True:
            seconds = yield from self.flows.transfer(rec.source, rec.destination, volume)
            rounds += 1
            sent += volume
            nxt, stop = next_round(volume, seconds, self._dirty_bytes_per_s(rec.vm), cap, m.downtime_target_s,
                                   rounds, m.max_rounds)
            if stop:
                volume = nxt + m.state_bytes
                break
            volume = nxt
        # stop and copy: the VM is paused while the last dirty pages and its state move
        pause = yield from self.flows.transfer(rec.source, rec.destination, volume)
        rec.rounds, rec.bytes, rec.downtime_s = rounds + 1, sent + volume, pause

    def windows(self, t0: float, t1: float, demand_mips: np.ndarray) -> list[MigrationWindow]:
        """Migrations overlapping [t0, t1), in interval-relative seconds, with what they cost each end."""
        out = []
        fixed = self.m.model == "fixed"
        self.unaccounted = [r for r in self.unaccounted if r.end_s > t0]
        for rec in self.unaccounted:
            if rec.start_s >= t1:
                continue
            end = rec.end_s if math.isfinite(rec.end_s) else math.inf
            if fixed:
                src_x, dst_x = 0.0, self.m.destination_cpu_share * demand_mips[rec.vm]
            else:
                span = (min(end, t1) - rec.start_s) or 1.0
                gbps = rec.bytes * 8 / 1e9 / span if math.isfinite(end) else \
                    self.host_bps[rec.destination] * self.m.bandwidth_share / 1e9
                src_x = dst_x = self.m.cpu_mips_per_gbps * gbps
            out.append(MigrationWindow(vm=rec.vm, source=rec.source, destination=rec.destination,
                                       start=rec.start_s - t0, end=end - t0, downtime_s=rec.downtime_s,
                                       source_extra_mips=src_x, destination_extra_mips=dst_x))
        return out
