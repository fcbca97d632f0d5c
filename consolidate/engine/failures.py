"""Host and rack failures during a run, and the high-availability restart of the VMs they stop.

At a failure the host goes down at once: its VMs stop and lose the interval's work, migrations from or to it are
aborted, and nothing is placed on it until it is repaired, when it comes back empty. Each stopped VM boots again
after its group's `restart_s` on another host (power-aware best fit with the overload check, the pools of its
directly assigned devices and their models honoured); one that fits nowhere waits, retried every interval and at
every repair. A VM whose disk is an NVMe controller by passthrough has its data on the failed host's drive: it
waits for that host's repair and boots there.

With VMs that arrive and leave (engine/lifecycle.py), a VM that leaves while it is down is down until then and
never boots again, and its availability is counted over its life in the run, not the whole run.

The schedule of failures comes from hardware/reliability.py; this module only turns it into events.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import simpy

from consolidate.engine.accounting import MigrationWindow
from consolidate.engine.failover import seconds_within
from consolidate.engine.migration import Migrations
from consolidate.engine.state import DatacenterState
from consolidate.hardware.assignment import NVME
from consolidate.policies.consolidation import plan_restarts
from consolidate.policies.registry import Detector


@dataclass
class FailureRecord:
    """One host failure: when, until when, and what happened to each VM it stopped."""

    host: int
    start_s: float
    end_s: float  # repair (may lie past the end of the run)
    vms: list[int] = field(default_factory=list)
    restarted_s: dict = field(default_factory=dict)  # vm -> time it booted again
    restarted_on: dict = field(default_factory=dict)  # vm -> host


class FailureManager:
    """The failures of one run: events from the schedule, restarts, and what the accounting needs."""

    def __init__(self, env: simpy.Environment, state: DatacenterState, down: list[list[tuple[float, float]]],
                 restart_s: np.ndarray, detector: Detector, migrations: Migrations | None, until_s: float,
                 forget_stuck=None):
        self.env, self.state, self.detector, self.migrations = env, state, detector, migrations
        self.restart_s = restart_s
        self._down = down
        self.forget_stuck = forget_stuck  # drains stop counting a VM as stuck once its host failed under it
        V = len(state.vm_host)
        self.demand = np.zeros(V)
        self.down_since = np.full(V, np.nan)  # when a VM stopped, while it is down
        self.ready = np.zeros(V, bool)  # down and past its restart delay: waiting for a host
        self.records: list[FailureRecord] = []
        self._open: dict[int, FailureRecord] = {}  # vm -> the failure that stopped it
        self.downtime_s = np.zeros(V)  # per VM, closed spans
        self.spans: list[tuple[int, float, float]] = []  # closed down spans (vm, start_s, end_s) not yet accounted
        self.crashes: list[tuple[int, float]] = []  # (vm, time) not yet accounted: the interval's work is lost
        self.restarts: list[tuple[int, int, float]] = []  # (vm, host, time) not yet accounted
        self.waiting_max = 0
        self.lost_mips_h = 0.0
        self.after_repair = None  # called after each repair's restarts (the lifecycle queue tries the host next)
        events = sorted((t, kind, h) for h, spans in enumerate(down) for a, b in spans
                        for t, kind in ((a, 1), (b, 0)) if t < until_s)  # repairs (0) before failures at one instant
        self.host_failures = sum(1 for _, kind, _ in events if kind == 1)
        env.process(self._events(events))

    def observe(self, demand_mips: np.ndarray) -> None:
        """This interval's demand of every VM (MIPS): the size a restarted VM is placed by."""
        self.demand = demand_mips

    def _events(self, events):
        for t, kind, h in events:
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            if kind == 1:
                self._fail(h)
            else:
                self.state.repair_host(h)
                self.retry()  # the VMs the failures stopped first, then whatever waits for a host
                if self.after_repair is not None:
                    self.after_repair()

    def _fail(self, host: int) -> None:
        now, st = self.env.now, self.state
        if self.migrations is not None:
            self.migrations.abort_host(host)
        down = st.fail_host(host)
        end = next((b for a, b in self._down[host] if a <= now < b), now)
        rec = FailureRecord(host=host, start_s=now, end_s=end, vms=[int(v) for v in down])
        self.records.append(rec)
        for v in rec.vms:
            self.down_since[v] = now
            self._open[v] = rec
            self.crashes.append((v, now))
            self.env.process(self._restart_after(v, float(self.restart_s[v])))
        if self.forget_stuck is not None and rec.vms:
            self.forget_stuck(rec.vms)

    def _restart_after(self, v: int, delay: float):
        yield self.env.timeout(delay)
        if not math.isnan(self.down_since[v]):
            self.ready[v] = True
            self.retry()

    def retry(self) -> None:
        """Boot every ready VM that has somewhere to go now (called at restarts, repairs and every interval)."""
        waiting = np.flatnonzero(self.ready)
        if waiting.size == 0:
            return
        st = self.state
        snap = st.snapshot(self.demand, np.zeros((0, len(st.vm_host))), np.zeros(len(st.hosts)))
        excluded = st.unavailable
        nvme = waiting[st.devices.pools[waiting, NVME]]
        placed = plan_restarts(snap, self.detector, np.setdiff1d(waiting, nvme), excluded)
        for v in nvme:  # its data is on its own host's drive: there or nowhere
            home = int(st.home[v])
            only = np.ones(len(st.hosts), bool)
            if home >= 0 and not st.failed[home]:
                only[home] = False
            placed += plan_restarts(snap, self.detector, np.array([v]), excluded | only)
        for v, h in placed:
            self._boot(v, h)
        self.waiting_max = max(self.waiting_max, int(self.ready.sum()))

    def _boot(self, v: int, host: int) -> None:
        now, st = self.env.now, self.state
        st.restart(v, host)
        if st.failover is not None:
            st.failover.restart(v, host, now, st.vm_host, st.vm_dest)
        self.downtime_s[v] += now - self.down_since[v]
        self.spans.append((v, float(self.down_since[v]), now))
        self.down_since[v] = np.nan
        self.ready[v] = False
        rec = self._open.pop(v)
        rec.restarted_s[v], rec.restarted_on[v] = now, host
        self.restarts.append((v, host, now))

    def interval(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray, list[MigrationWindow]]:
        """For the accounting of [t0, t1): seconds of each VM's work lost to a crash in it (the whole interval's:
        work since the interval began is gone), the share of the interval each VM was down (0..1), and each
        restart in it as a zero-length move from nowhere (the VM is served on its new host from its boot on).
        Intervals are accounted in order: what ended before t0 is forgotten."""
        V, dt = len(self.state.vm_host), t1 - t0
        self.spans = [s for s in self.spans if s[2] > t0]
        down = seconds_within(self.spans, self.down_since, t0, t1)
        lost = np.zeros(V)
        keep = []
        for v, t in self.crashes:
            if t < t1:
                lost[v] = dt
            else:
                keep.append((v, t))
        self.crashes = keep
        windows, later = [], []
        for v, h, t in self.restarts:
            if t < t1:
                at = max(t - t0, 1e-9)  # a boot at the interval's very start still counts in it
                windows.append(MigrationWindow(vm=v, source=-1, destination=h, start=at, end=at, downtime_s=0.0,
                                               source_extra_mips=0.0, destination_extra_mips=0.0))
            else:
                later.append((v, h, t))
        self.restarts = later
        return lost, np.minimum(down / dt, 1.0), windows

    def forget(self, v: int) -> None:
        """VM `v` leaves (its life is over) while it may be down: its downtime ends now and it never boots again."""
        if math.isnan(self.down_since[v]):
            return
        now = self.env.now
        self.downtime_s[v] += now - self.down_since[v]
        self.spans.append((v, float(self.down_since[v]), now))
        self.down_since[v] = np.nan
        self.ready[v] = False
        self._open.pop(v, None)

    def close(self, now: float) -> None:
        """Count the VMs still down at the end of the run."""
        open_ = ~np.isnan(self.down_since)
        self.downtime_s[open_] += now - self.down_since[open_]

    def availability(self, duration_s: float, life_s: np.ndarray | None = None) -> np.ndarray:
        """Each VM's share of the time it should have run that it was up (0..1): over the whole run, or over
        `life_s`, its seconds alive in the run (VMs that arrive and leave; NaN for a VM that never lived in it)."""
        span = np.full(len(self.downtime_s), float(duration_s)) if life_s is None else np.asarray(life_s, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(span > 0, 1.0 - self.downtime_s / span, np.nan)
