"""The datacenter as SimPy processes: the run's clock and its accounting.

SimPy orders time; it never steps per VM. One process ticks every `interval_s`: it accounts the interval that
just ended (with the migrations that ran in it, engine/accounting.py), prices the new one's virtualization
overhead (the cost model), and lets the consolidation manager (engine/manager.py) plan a round, whose moves run
as migrations (engine/migration.py) on the same environment. Placement lives in engine/state.py.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import simpy

from consolidate.costmodel.interval import blend
from consolidate.costmodel.model import OverheadModel
from consolidate.costmodel.tables import REASON_LABELS
from consolidate.engine.accounting import account
from consolidate.engine.failures import FailureManager
from consolidate.engine.lifecycle import Lifecycles
from consolidate.engine.manager import ConsolidationManager
from consolidate.engine.migration import Migrations
from consolidate.engine.record import (HostRows, HostSink, HostTotals, IntervalRows, IntervalSink, OverheadRecord,
                                       RecordSink, RunRecord, RunTotals, as_float32)
from consolidate.engine.state import DatacenterState, HostTable
from consolidate.errors import ConsolidateError
from consolidate.hardware.assignment import DEVICE_CLASSES
from consolidate.hardware.reliability import read_trace, schedule
from consolidate.policies.registry import consolidation_policy, make_detector
from consolidate.scenario.model import Scenario
from consolidate.units import BYTES_PER_MB
from consolidate.workload.build import Workload

Progress = Callable[[int, int], None]  # (intervals done, intervals total)


class Datacenter:
    """Hosts, VMs, the consolidation manager and live migrations of one run on a SimPy environment."""

    def __init__(self, sc: Scenario, wl: Workload, hosts: HostTable, vm_host: np.ndarray,
                 progress: Progress | None = None, om: OverheadModel | None = None,
                 rows: IntervalSink | None = None, host_rows: HostSink | None = None,
                 migration_rows: RecordSink | None = None):
        """`rows` and `host_rows`, if given, receive every interval's per-VM and per-host rows as it is accounted
        (the run itself keeps only their totals, RunTotals and HostTotals); `migration_rows` receives the
        migrations as they end (the record then keeps none)."""
        self.sc, self.wl, self.hosts, self.om = sc, wl, hosts, om
        self.progress = progress
        self.rows, self.host_rows, self.migration_rows = rows, host_rows, migration_rows
        self.env = simpy.Environment()
        self.state = DatacenterState(sc, wl, hosts, vm_host)
        n_int, n_vm, n_h = sc.n_intervals, len(wl.vms), len(hosts)
        self.nominal_mips = wl.nominal_mips
        self.memory_mb = wl.vms["memory_mb"].to_numpy(np.float64)
        net_path = None
        if om is not None:
            cfg = om.configs_for(vm_host, hosts.host_type)
            net = om.tables.io[DEVICE_CLASSES.index("net")]
            net_path = [net.path[c] if c >= 0 else "" for c in cfg]
        self.rec = RunRecord(vm_host=vm_host.copy(),
                             totals=RunTotals(n_vm, lifecycles=wl.lifecycles, overhead=om is not None),
                             host_totals=HostTotals(n_int, n_h, sc.interval_s))
        if om is not None:
            self.rec.overhead = OverheadRecord(om.reasons, np.zeros((n_int, len(REASON_LABELS))), net_path)
        policy = consolidation_policy(sc)
        self.migrations = self.manager = self.failures = None
        if policy is not None or sc.maintenance:
            self.migrations = Migrations(self.env, sc, wl, self.state)
            self.manager = ConsolidationManager(self.env, sc, self.state, self.migrations, policy)
        if sc.failures is not None:
            trace = read_trace(sc.base_dir / sc.failures.trace) if sc.failures.trace else ()
            down = schedule(sc.failures, [hosts.type_names[t] for t in hosts.host_type], sc.network.hosts_per_rack,
                            sc.seed, sc.duration_s, trace)
            restart = np.array([g.restart_s for g in sc.vms])[wl.vms["group_index"].to_numpy()] if n_vm else \
                np.zeros(0)
            # restarts place as drains do: the policy's detector, or wherever a VM fits
            detector = self.manager.detector if self.manager is not None else make_detector("thr", 1.0)
            self.failures = FailureManager(self.env, self.state, down, restart, detector, self.migrations,
                                           sc.duration_s, self.manager.forget_stuck if self.manager else None)
        self.life = None
        if wl.lifecycles:
            # arrivals place as the scenario does: a consolidating datacenter by its detector, else its policy
            self.life = Lifecycles(self.env, sc, wl, self.state, self.manager.detector if policy is not None else None,
                                   self.migrations, self.manager.forget_stuck if self.manager else None, om,
                                   self.failures)
            self.rec.vms_live = np.zeros(n_int, np.int64)
            self.rec.vms_queued = np.zeros(n_int, np.int64)
        self.env.process(self._ticks())

    def _ticks(self):
        sc, dt, st = self.sc, self.sc.interval_s, self.state
        pending = None
        for k in range(sc.n_intervals):
            if pending is not None:
                self._account(*pending)
            if self.life is not None:
                self.life.retry()  # who arrives or leaves at this edge, before anything looks at placement
            util = self.wl.cpu_util[k].astype(np.float64)
            if sc.cloudsim_compat and k >= 1:
                # CloudSim's clock runs 0.1 s past each interval edge and interpolates the trace, so a VM asks
                # for exactly nothing only when this sample and the next are both zero; its first look is one
                # interval after the VMs start (the first update), so nothing retires at time 0
                nxt = self.wl.cpu_util[min(k + 1, sc.n_intervals - 1)]
                done = (util == 0) & (nxt == 0) & ~st.retired & (st.vm_host >= 0) & (st.vm_dest < 0)
                st.retire(done)
                util = np.where(st.retired, 0.0, util)
            guest = util * self.nominal_mips
            if st.failover is not None:
                st.failover.replug_waiting(self.env.now, st.vm_host, st.vm_dest)
            ov = ov_pv = now = None
            if self.om is not None:
                # VMs that arrive and leave: priced at their rate while alive, for the share of the interval they live
                price = util if self.life is None else self.life.util_alive(k, util)
                ov = now = self.om.at(k, price, st.vm_host, self.hosts.host_type, self.hosts.cores)
                if st.failover is not None:
                    # the same interval with every failover VM on its paravirtual NIC: blended by the share of
                    # the interval each one really spends without its VF, known when the interval is accounted
                    ov_pv = self.om.at(k, price, st.vm_host, self.hosts.host_type, self.hosts.cores,
                                       paravirtual=st.failover.vm)
                if self.life is not None:
                    ov = now = self.life.hosted(ov, k, st.vm_host)
                    ov_pv = self.life.hosted(ov_pv, k, st.vm_host) if ov_pv is not None else None
                if st.failover is not None:
                    now = blend(ov, ov_pv, st.failover.paravirtual_now())
            own = guest + (now.overhead_mips if now is not None else 0.0)
            backend = now.backend_mips if now is not None else np.zeros(len(guest))
            if self.manager is not None:
                self.manager.observe(own + backend)
                if k >= 1:
                    self.manager.round()
                self.manager.retry_drains()
            if self.failures is not None:
                self.failures.observe(own + backend)
                self.failures.retry()
            pending = (k, guest, ov, ov_pv, st.vm_host.copy(), self.env.now)
            if self.progress is not None:
                self.progress(k + 1, sc.n_intervals)
            yield self.env.timeout(dt)
        if pending is not None:
            self._account(*pending)

    def _account(self, k, guest, ov, ov_pv, vm_host, t0):
        sc, hosts, rec, failover = self.sc, self.hosts, self.rec, self.state.failover
        gap = None
        if failover is not None:
            share, gap = failover.interval(t0, t0 + sc.interval_s)
            if ov_pv is not None:
                ov = blend(ov, ov_pv, share)
        own = guest + (ov.overhead_mips if ov is not None else 0.0)
        backend = ov.backend_mips if ov is not None else np.zeros(len(guest))
        windows = self.migrations.windows(t0, t0 + sc.interval_s, own) if self.migrations is not None else []
        queued = None
        if self.life is not None:
            # VMs placed inside the interval boot there (and cost overhead from then on, on that host); what a VM
            # spends queued is neither served nor unserved
            own, backend, queued, boots, ov = self.life.interval(t0, t0 + sc.interval_s, guest, vm_host, ov)
            windows = windows + boots
            rec.vms_live[k], rec.vms_queued[k] = self.life.live_in(t0, t0 + sc.interval_s)
        lost = down = None
        if self.failures is not None:
            lost, down, boots = self.failures.interval(t0, t0 + sc.interval_s)
            # a VM that booted at the interval's start, before its tick, is already in vm_host there
            windows = windows + [w for w in boots if not (w.start <= 1e-9 and vm_host[w.vm] == w.destination)]
        acc = account(sc.interval_s, own, backend, vm_host, self.state.vm_cap_mips(vm_host), hosts.capacity_mips,
                      hosts.curves_w, hosts.host_type, windows, sc.migration.cpu_degradation,
                      sc.power_off_idle_hosts, sc.cloudsim_compat,
                      # CloudSim's SLATAH convention belongs to its own (fixed) migration model
                      migration_violates=sc.cloudsim_compat and sc.migration.model == "fixed",
                      gap_s=gap, lost_s=lost)
        # the per-VM rows, as float32 (what the run records): their totals, the sink's rows, per-host sums
        rows = IntervalRows(
            k=k, guest_mips=guest.astype(np.float32), served_mips=acc.vm_served_mips.astype(np.float32),
            vm_host=vm_host.astype(np.int32),
            migration_loss_mips=acc.vm_migration_loss_mips.astype(np.float32) if self.migrations is not None
            else None,
            queued_mips=queued.astype(np.float32) if queued is not None else None,
            overhead=as_float32(ov) if ov is not None else None, reasons=self.om.reasons if ov is not None else [])
        if k == 0:
            rec.vm_host_start = rows.vm_host
        rec.totals.put(rows)
        if self.rows is not None:
            self.rows.put(rows)
        placed = vm_host >= 0
        at = vm_host[placed]
        n_h = len(hosts)
        host = HostRows(
            k=k, demand_mips=acc.host_request_mips, served_mips=acc.host_served_mips, on=acc.host_on_fraction > 0,
            on_fraction=acc.host_on_fraction.astype(np.float32), overloaded=acc.host_overloaded.astype(np.float32),
            # CloudSim integrates energy from its first host update, one interval in: the frame before it starts
            # from a utilisation of zero, which it prices at nothing
            power_w=np.zeros(n_h) if sc.cloudsim_compat and k == 0 else acc.host_power_w,
            vms=acc.host_vms.astype(np.int32),
            memory_used_mb=np.bincount(at, weights=self._memory_used_mb(k)[placed], minlength=n_h),
            migrating=self.migrations is not None)
        if ov is not None:
            rec.overhead.reason_mips[k] = ov.reason_mips
            host.overhead_mips = np.bincount(at, weights=rows.overhead.overhead_mips[placed], minlength=n_h)
            host.backend_mips = np.bincount(at, weights=rows.overhead.backend_mips[placed], minlength=n_h)
        rec.host_totals.put(host)
        if self.host_rows is not None:
            self.host_rows.put(host)
        self._hand_on_migrations()
        if self.failures is not None:
            # work a failure cost: the whole interval of a VM whose host failed in it, else its share spent down
            self.failures.lost_mips_h += float(((own + backend) * np.where(lost > 0, 1.0, down)).sum()) \
                * sc.interval_s / 3600

    def _hand_on_migrations(self, final: bool = False) -> None:
        """Give the sink the migrations that have ended (all of them when `final`), oldest started first, and
        drop them: a consolidating run starts tens of thousands a day per 10,000 VMs, at about 380 bytes each."""
        if self.migration_rows is None or self.migrations is None:
            return
        recs = self.migrations.records
        # a record is final once its migration has ended (completed, aborted or cancelled: end_s set)
        n = len(recs) if final else next((i for i, r in enumerate(recs) if not math.isfinite(r.end_s)), len(recs))
        if n:
            self.migration_rows.put(recs[:n])
            del recs[:n]

    def _memory_used_mb(self, k: int) -> np.ndarray:
        """Each VM's memory in use in interval k (MiB): its trace's mem_used_bytes where it has one (at most the
        provisioned memory), else its provisioned memory."""
        used = self.wl.extra.get("mem_used_bytes")
        if used is None:
            return self.memory_mb
        u = used[k].astype(np.float64) / BYTES_PER_MB
        return np.where(np.isnan(u) | (u < 0), self.memory_mb, np.minimum(self.memory_mb, u))

    def run(self) -> RunRecord:
        """Run to duration_s and return the raw record."""
        # just past the end, so the last interval's accounting (at exactly duration_s) runs: a fixed epsilon is
        # below a long run's float resolution (31,536,000 s + 1e-9 == 31,536,000 s)
        try:
            self.env.run(until=math.nextafter(self.sc.duration_s, math.inf))
        except ConsolidateError as exc:
            # SimPy re-raises a process's exception as a copy built from its args: the original is the cause
            raise (exc.__cause__ if isinstance(exc.__cause__, ConsolidateError) else exc) from None
        st = self.state
        self.rec.vm_host = st.vm_host.copy()
        self.rec.host_totals.close(self.rec.vm_host)
        self.rec.vm_retired = st.retired.copy()
        if st.failover is not None:
            st.failover.close(self.env.now)
            self.rec.failover = st.failover
        if self.migrations is not None:
            self._hand_on_migrations(final=True)
            self.rec.migrations = self.migrations.records
            self.rec.drains = self.manager.drains
        if self.failures is not None:
            self.failures.close(self.env.now)
            self.rec.failures = self.failures
        if self.life is not None:
            self.life.close(self.env.now)
            self.rec.lifecycle = self.life
            if self.om is not None:  # a VM's I/O path is the one of the first host it ran on (placed at arrival)
                net = self.om.tables.io[DEVICE_CLASSES.index("net")]
                cfg = self.om.configs_for(self.life.first_host, self.hosts.host_type)
                self.rec.overhead.cfg_net_path = [net.path[c] if c >= 0 else "" for c in cfg]
        return self.rec
