"""Live migrations as SimPy processes.

`fixed` (CloudSim's model): the migration takes memory / (bandwidth_share x the destination's NIC rate); no
network, no downtime. `precopy`: rounds over the network (engine/flows.py over hardware/topology.py), each round
a transfer that shares every link it crosses max-min fairly with the other migrations in flight; the rates are
recomputed whenever a transfer starts or ends. `cold` (device VMs whose group says so): stopped, memory copied,
booted at the destination. Memory stays reserved on the destination from start to end.

Migrations start moves decided elsewhere (engine/manager.py) and change placement only through DatacenterState.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from consolidate.engine.accounting import MigrationWindow
from consolidate.engine.flows import Flows
from consolidate.engine.state import DatacenterState
from consolidate.hardware.topology import Network, build_topology
from consolidate.policies.consolidation import Move
from consolidate.policies.precopy import IDEAL, MigrationCosts, next_round, physical_costs
from consolidate.scenario.model import Scenario
from consolidate.units import BYTES_PER_MB, CLOUDSIM_BYTES_PER_MB
from consolidate.workload.build import Workload

MB = BYTES_PER_MB


@dataclass(slots=True)  # slots: a consolidating run at a million VMs starts millions (less memory, faster)
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
    # CloudSim 3.0.3 (cloudsim_compat) may move a VM twice in one round, both times from its source: the first
    # move is counted and reserves its destination while it copies, but the VM ends where the second goes
    passed_through: bool = False
    aborted: bool = False  # an end host failed: the VM stayed on its source (or went down with it)


class Migrations:
    """The migrations of one run: started from moves, run as processes, completed into the state; and what each
    costs the intervals it overlaps (windows)."""

    def __init__(self, env: simpy.Environment, sc: Scenario, wl: Workload, state: DatacenterState):
        self.env, self.state, self.wl = env, state, wl
        self.m = sc.migration
        self.interval_s, self.n_intervals = sc.interval_s, sc.n_intervals
        hosts = state.hosts
        self.records: list[MigrationRecord] = []
        self.running: dict[int, tuple[MigrationRecord, simpy.Process | None]] = {}  # by VM: at most one each
        self.unaccounted: list[MigrationRecord] = []  # may still overlap an interval not yet accounted
        self.slots = None
        if self.m.max_concurrent_per_host is not None:
            self.slots = [simpy.Resource(env, capacity=self.m.max_concurrent_per_host) for _ in range(len(hosts))]
        self.flows = None
        if self.m.model == "precopy":
            bps = [hosts.types[t].network_bps for t in hosts.host_type]
            self.flows = Flows(env, Network(build_topology(sc.network, bps)), self.m.bandwidth_share,
                               sc.network.sharing)
        self.host_bps = np.array([t.network_bps for t in hosts.types])[hosts.host_type]
        self._sc = sc  # each VM's hypervisor (its group's, else its host type's) sets its switch-over
        # the fixed model counts memory in MiB like the rest, except when it reproduces CloudSim's arithmetic
        self.fixed_bytes_per_mb = CLOUDSIM_BYTES_PER_MB if sc.cloudsim_compat else BYTES_PER_MB
        # fixed delays with nothing to wait for or share (no slots, no VF to re-plug) end at known times: one
        # process per round completes them in order, instead of a process per migration
        self._batchable = self.m.model == "fixed" and self.slots is None and state.failover is None

    def port_load(self) -> tuple[np.ndarray, np.ndarray]:
        """(bits/s sent, bits/s received) per host by the pre-copy streams in flight now: what they take from the
        host's port 0, which the VMs' packets through it then lack (migration.bandwidth_share caps a stream's share
        of every link, so at least 1 - bandwidth_share of the port stays with the VMs)."""
        n = len(self.host_bps)
        if self.flows is None:
            return np.zeros(n), np.zeros(n)
        return self.flows.host_load(n)

    def start(self, mv: Move, batch: list | None = None, end_s: float | None = None) -> MigrationRecord:
        """Start a migration: its own process, or, for a plain fixed-delay one when `batch` is given, an entry
        (end time, record) that one process completes with the rest of its round (end_s: that end time in s, when
        the caller has it; a cold VM's migration gets its own process all the same)."""
        env = self.env
        rec = MigrationRecord(mv.vm, mv.source, mv.destination, mv.reason, env.now)
        earlier = self.running.get(mv.vm)
        if earlier is not None:
            earlier[0].passed_through = True  # a second move of the same round: the VM goes on from its source
        self.state.begin_move(mv.vm, mv.destination)
        self.records.append(rec)
        self.unaccounted.append(rec)
        if batch is not None and not self.state.devices.cold[mv.vm]:
            batch.append((env.now + self._fixed_s(rec) if end_s is None else end_s, rec))
            self.running[mv.vm] = (rec, None)
        else:
            self.running[mv.vm] = (rec, env.process(self._run(rec)))
        return rec

    def abort_host(self, host: int) -> list[MigrationRecord]:
        """The host failed: every migration from or to it stops now. The VM stays on its source (or, if that was
        the failed host, goes down with it); the destination's reservation is released."""
        out = []
        for vm, (rec, proc) in list(self.running.items()):
            if host not in (rec.source, rec.destination):
                continue
            rec.end_s, rec.aborted = self.env.now, True
            rec.reason += " (aborted)"
            self.state.cancel_move(vm)
            del self.running[vm]
            if proc is not None and proc.is_alive:
                proc.interrupt("host failed")
            out.append(rec)
        return out

    def cancel_vm(self, vm: int, why: str) -> MigrationRecord | None:
        """The VM leaves the datacenter (its life is over): its migration stops now, as an aborted one does; the
        destination's reservation is released. Returns the record (None if it was not migrating)."""
        entry = self.running.pop(vm, None)
        if entry is None:
            return None
        rec, proc = entry
        rec.end_s, rec.aborted = self.env.now, True
        rec.reason += f" ({why})"
        self.state.cancel_move(vm)
        if proc is not None and proc.is_alive:
            proc.interrupt(why)
        return rec

    def start_round(self, moves: list[Move]) -> None:
        """Start every move a consolidation round decided, in the order decided."""
        if not self._batchable:
            for mv in moves:
                self.start(mv)
            return
        if not moves:
            return
        # the end times of the whole round at once (the same float operations as _fixed_s, element by element)
        vm = np.fromiter((mv.vm for mv in moves), np.int64, len(moves))
        dest = np.fromiter((mv.destination for mv in moves), np.int64, len(moves))
        ends = (self.env.now + self._fixed_s_of(vm, dest)).tolist()
        batch = []
        for mv, end in zip(moves, ends):
            self.start(mv, batch, end)
        if batch:
            self.env.process(self._complete_in_order(batch))

    def _complete_in_order(self, batch: list):
        """Process: complete a round's fixed-delay migrations at their end times, in order. Those that end without
        a wait between them (nothing else runs meanwhile) are completed together."""
        env = self.env
        done = []
        for end, rec in sorted(batch, key=lambda e: e[0]):  # stable: same end, same order as started
            if end > env.now:
                self._complete_fixed(done)
                done = []
                yield env.timeout(end - env.now)
            if not rec.aborted:
                done.append(rec)
        self._complete_fixed(done)

    def _complete_fixed(self, recs: list[MigrationRecord]) -> None:
        """_fixed_done and _complete for fixed-delay migrations ending now, in order, at once."""
        if not recs:
            return
        now = self.env.now
        vm = np.fromiter((r.vm for r in recs), np.int64, len(recs))
        for r, b in zip(recs, (self.state.ram_mb[vm] * self.fixed_bytes_per_mb).tolist()):
            r.rounds, r.bytes, r.end_s = 1, b, now
        arrived = [r for r in recs if not r.passed_through]
        self.state.end_moves(np.fromiter((r.vm for r in arrived), np.int64, len(arrived)),
                             np.fromiter((r.destination for r in arrived), np.int64, len(arrived)))
        running = self.running
        for r in arrived:
            running.pop(r.vm, None)

    def _fixed_s(self, rec: MigrationRecord) -> float:
        return self._fixed_s_of(rec.vm, rec.destination)

    def _fixed_s_of(self, vm, destination):
        """The fixed model's duration (s) of migrations of `vm` to `destination` (indices or arrays of them)."""
        # CloudSim: memory over half the destination's bandwidth
        return self.state.ram_mb[vm] * self.fixed_bytes_per_mb * 8 / (self.host_bps[destination] * self.m.bandwidth_share)

    def _fixed_done(self, rec: MigrationRecord) -> None:
        rec.rounds, rec.bytes = 1, self.state.ram_mb[rec.vm] * self.fixed_bytes_per_mb

    def _complete(self, rec: MigrationRecord) -> None:
        """The VM is on its destination from now on."""
        st = self.state
        rec.end_s = self.env.now
        if rec.passed_through:
            return
        st.end_move(rec.vm, rec.destination)
        self.running.pop(rec.vm, None)
        if st.failover is not None:
            rec.service_gap_s += st.failover.plug(rec.vm, rec.destination, self.env.now, st.vm_host, st.vm_dest)

    def _run(self, rec: MigrationRecord):
        env, st = self.env, self.state
        requested = env.now
        reqs = []
        try:
            if self.slots is not None:
                reqs = [self.slots[rec.source].request(), self.slots[rec.destination].request()]
                yield env.all_of(reqs)
                rec.start_s = env.now
                rec.queued_s = rec.start_s - requested
            if st.failover is not None:  # the VF goes when the transfer starts, not while the move waits its turn
                rec.service_gap_s += st.failover.unplug(rec.vm, env.now)
            if st.devices.cold[rec.vm]:
                # cold: stop the VM, copy its memory at the migration share of the NIC, boot it at the destination
                seconds = st.ram_mb[rec.vm] * MB * 8 / (self.host_bps[rec.destination] * self.m.bandwidth_share)
                yield env.timeout(seconds + self.m.cold_boot_s)
                rec.rounds, rec.bytes = 1, st.ram_mb[rec.vm] * MB
                rec.downtime_s = seconds + self.m.cold_boot_s
                rec.reason += " (cold)"
            elif self.m.model == "fixed":
                yield env.timeout(self._fixed_s(rec))
                self._fixed_done(rec)
            else:
                yield from self._precopy(rec)
            self._complete(rec)
        except simpy.Interrupt:
            pass  # aborted by a host failure: abort_host has put the state right
        finally:
            for r, res in zip(reqs, ([self.slots[rec.source], self.slots[rec.destination]] if reqs else [])):
                if r.triggered:
                    res.release(r)
                else:
                    r.cancel()  # still queued for a slot

    def _dirty_bytes_per_s(self, vm: int) -> float:
        k = min(int(self.env.now // self.interval_s), self.n_intervals - 1)
        col = self.wl.extra.get("dirty_pages_per_s")
        if col is not None and not np.isnan(col[k, vm]):
            pages = float(col[k, vm])
        else:
            pages = self.m.dirty_pages_per_s_at_full_load * float(self.wl.cpu_util[k, vm]) * self.state.vcpus[vm]
        return pages * self.m.page_bytes

    def _costs(self, vm: int, memory: float) -> MigrationCosts:
        """What this VM's migration costs beyond its memory bytes (migration.costs)."""
        m = self.m
        if m.costs == "ideal":
            return IDEAL
        zero = m.zero_fraction
        used = self.wl.extra.get("mem_used_bytes")
        if used is not None:
            k = min(int(self.env.now // self.interval_s), self.n_intervals - 1)
            if not np.isnan(used[k, vm]):
                zero = float(np.clip(1.0 - used[k, vm] / memory, 0.0, 1.0))
        g = self._sc.vms[int(self.wl.vms["group_index"].iat[vm])]
        hv = g.virtualization.hypervisor if g.virtualization is not None else None
        if hv is None:
            ht = self.state.hosts.types[self.state.hosts.host_type[self.state.vm_host[vm]]]
            hv = ht.virtualization.hypervisor if ht.virtualization is not None else None
        return physical_costs(hv, zero, m.page_bytes, m.dirty_compression_ratio, m.switchover_s)

    def _round(self, rec: MigrationRecord, costs: MigrationCosts, volume: float, first: bool):
        """Process: one round of `volume` bytes of guest memory over the network, no faster than the sender scans
        memory for zero pages; returns (seconds, wire bytes)."""
        wire = costs.wire_bytes(volume, first)
        seconds = yield from self.flows.transfer(rec.source, rec.destination, wire)
        scan = volume / costs.scan_bytes_per_s
        if scan > seconds:
            yield self.env.timeout(scan - seconds)
            seconds = scan
        return seconds, wire

    def _precopy(self, rec: MigrationRecord):
        m = self.m
        memory = self.state.ram_mb[rec.vm] * MB
        cap = memory * m.working_set_fraction
        costs = self._costs(rec.vm, memory)
        rec.path = " ".join(f"{a}>{b}" for a, b in self.flows.net.path(rec.source, rec.destination))
        volume, rounds, sent = memory, 0, 0.0
        while True:
            seconds, wire = yield from self._round(rec, costs, volume, rounds == 0)
            rounds += 1
            sent += wire
            nxt, stop = next_round(volume, seconds, self._dirty_bytes_per_s(rec.vm), cap, m.downtime_target_s,
                                   rounds, m.max_rounds)
            volume = nxt
            if stop:
                break
        # stop and copy: the VM is paused while the last dirty pages and its state move, then switches over
        pause, wire = yield from self._round(rec, costs, volume + m.state_bytes, False)
        if costs.switchover_s > 0:
            yield self.env.timeout(costs.switchover_s)
        rec.rounds, rec.bytes, rec.downtime_s = rounds + 1, sent + wire, pause + costs.switchover_s

    def windows(self, t0: float, t1: float, demand_mips: np.ndarray) -> list[MigrationWindow]:
        """Migrations overlapping [t0, t1), in interval-relative seconds, with what they cost each end."""
        out = []
        fixed = self.m.model == "fixed"
        self.unaccounted = [r for r in self.unaccounted if r.end_s > t0]
        share = self.m.destination_cpu_share
        for rec in self.unaccounted:
            # an aborted migration moved nothing: the VM stayed where the interval started it (its loss, if its
            # source failed, is the failure's)
            if rec.start_s >= t1 or rec.aborted:
                continue
            end = rec.end_s if math.isfinite(rec.end_s) else math.inf
            if fixed:
                src_x, dst_x = 0.0, share * demand_mips[rec.vm]
            else:
                span = (min(end, t1) - rec.start_s) or 1.0
                gbps = rec.bytes * 8 / 1e9 / span if math.isfinite(end) else \
                    self.host_bps[rec.destination] * self.m.bandwidth_share / 1e9
                src_x = dst_x = self.m.cpu_mips_per_gbps * gbps
            out.append(MigrationWindow(vm=rec.vm, source=rec.source, destination=rec.destination,
                                       start=rec.start_s - t0, end=end - t0, downtime_s=rec.downtime_s,
                                       source_extra_mips=src_x, destination_extra_mips=dst_x,
                                       carries_vm=not rec.passed_through))
        return out
