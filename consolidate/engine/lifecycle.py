"""VMs that arrive and leave during a run.

At its start_s a VM is placed by the scenario's placement policy at that moment: on the hosts then on (holding a
VM) first, else by switching one on; a consolidating datacenter places it as its rounds do (PABFD with the
detector's overload check, as a restart after a failure). A VM that fits nowhere stops the run
(`on_unplaceable: error`), is rejected (`reject`) or waits in a queue (`queue`: first come first served, the
head of the queue first; with `max_wait_s` it is rejected once it has waited that long). At its end_s it leaves:
its CPU, memory and devices are free at once, its migration (if any) is cancelled, and the queue is tried again.

Events are processed at their exact times; the interval accounting sees a VM placed inside an interval as a
boot there (served from its placement on), and a VM that leaves inside an interval asks for its work of the
interval (its trace is 0 after it leaves), so served + unserved + queued = demand.

With the overhead model, a VM costs virtualization overhead only while it has a host: before it arrives, after
it leaves and while it waits in the queue it has no exits, no backend work and no I/O (its I/O is neither asked
nor served). Its overhead is priced at its rate while alive (the interval's mean over the share it lives) on the
host it runs on, times the share of the interval it runs there: on its host at the interval's start from the
tick's placement, and a VM placed inside the interval on the host it is placed on, from its placement on.
Arrivals are sized as the initial placement sizes VMs: demand plus the overhead and backend they would cost on
each host type, placed by the scenario's placement policy. Its demand (guest + overhead + backend) is then
served + unserved + queued; what it asks while queued is its guest work alone (no host, no overhead).

With failures (engine/failures.py), arrivals never go to a failed host, a repair tries the queue after the
failures' own restarts, a VM that leaves while down is down until it leaves and never restarts, and a VM placed
inside an interval whose host then fails in it loses that interval's work, as any VM a failure stops does.
"""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import simpy

from consolidate.costmodel.interval import IntervalOverhead
from consolidate.costmodel.model import OverheadModel
from consolidate.engine.accounting import MigrationWindow
from consolidate.engine.state import DatacenterState
from consolidate.errors import PlacementError, Problem
from consolidate.policies.consolidation import plan_restarts
from consolidate.policies.placement import place
from consolidate.policies.registry import Detector
from consolidate.scenario.model import Scenario
from consolidate.workload.build import Workload

DEPART, ARRIVE = 0, 1  # at one instant VMs leave before others arrive: what leaves makes room


class Lifecycles:
    """Arrivals, departures and the queue of one run; what the accounting needs of them."""

    def __init__(self, env: simpy.Environment, sc: Scenario, wl: Workload, state: DatacenterState,
                 detector: Detector | None, migrations=None, forget_stuck=None, om: OverheadModel | None = None,
                 failures=None):
        self.env, self.sc, self.wl, self.state = env, sc, wl, state
        self.detector, self.migrations, self.forget_stuck = detector, migrations, forget_stuck
        self.om, self.failures = om, failures  # failures: engine.failures.FailureManager, a VM may leave while down
        if failures is not None:
            failures.after_repair = lambda: self._try_queue(at_edge=False)  # a repaired host may take the queue
        self._sizing: tuple[int, np.ndarray] | None = None  # (interval, per-type sizes) with the overhead model
        V = len(wl.vms)
        self.start_s, self.end_s = wl.start_s, wl.end_s
        self.alive = np.zeros(V, bool)
        self.rejected = np.zeros(V, bool)
        self.departed = np.zeros(V, bool)
        self.placed_ever = state.vm_host >= 0
        self.first_host = state.vm_host.copy()  # the first host each VM ran on (-1: none yet)
        self.queued_at = np.full(V, np.nan)  # when a VM joined the queue
        self.queue_end = np.full(V, np.nan)  # when it left it (placed, rejected or departed)
        self.queue: list[int] = []
        self.boots: list[tuple[int, int, float]] = []  # placements inside an interval, not yet accounted
        self.mem_need = wl.memory_need_mb(sc.memory_basis)
        self._rate: tuple[int, np.ndarray] | None = None  # (interval, rate_mips(interval)), the last asked for
        # each VM's peak rate, from a pass over the grid a block of intervals at a time (a spooled grid is read
        # in order, once): never an (intervals, VMs) array of rates
        self.peak_mips = np.zeros(V)
        step = max(1, (8 * 2**20) // max(8 * V, 1))
        for k0 in range(0, sc.n_intervals, step):
            rate = self._rates(k0, wl.cpu_util[k0:k0 + step])
            self.peak_mips = rate.max(axis=0) if k0 == 0 else np.maximum(self.peak_mips, rate.max(axis=0))
        lives = self.end_s > self.start_s
        here = lives & (self.start_s <= 0)
        self.alive[here] = True
        events = [(float(self.start_s[v]), ARRIVE, int(v)) for v in np.flatnonzero(lives & (self.start_s > 0))]
        events += [(float(self.end_s[v]), DEPART, int(v)) for v in np.flatnonzero(lives & (self.end_s < sc.duration_s))]
        self.events = sorted(events)
        self._next = 0
        self.arrivals = int((lives & (self.start_s > 0)).sum())
        for v in np.flatnonzero(here & (state.vm_host < 0)):  # there at t = 0 and fit nowhere
            if sc.on_unplaceable == "queue":
                self._enqueue(int(v), 0.0)
            else:
                self.rejected[v] = True
        self.live_max = int(here.sum())
        env.process(self._clock())

    # --- events --------------------------------------------------------------------------------------------

    def _clock(self):
        """Process: wake at each event time inside an interval (ticks handle the ones on their edges)."""
        dt = self.sc.interval_s
        times = sorted({t for t, _, _ in self.events if abs(t / dt - round(t / dt)) > 1e-9})
        for t in times:
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            self.advance(at_edge=False)

    def advance(self, at_edge: bool) -> None:
        """Process every event due by now, expire the queue and try it (the tick calls this at each interval
        edge before it looks at placement; `at_edge` placements need no boot window)."""
        now = self.env.now
        while self._next < len(self.events) and self.events[self._next][0] <= now + 1e-9:
            _, kind, v = self.events[self._next]
            self._next += 1
            if kind == DEPART:
                self._depart(v)
            else:
                self._arrive(v, at_edge)
        self._expire()
        self._try_queue(at_edge)
        self.live_max = max(self.live_max, int(self.alive.sum()))

    def _arrive(self, v: int, at_edge: bool) -> None:
        now = self.env.now
        self.alive[v] = True
        if self.queue:  # first come first served: behind those already waiting
            self._enqueue(v, now)
            return
        h = self._place(v)
        if h >= 0:
            self._boot(v, h, at_edge)
        elif self.sc.on_unplaceable == "queue":
            self._enqueue(v, now)
        elif self.sc.on_unplaceable == "reject":
            self.rejected[v] = True
        else:
            row = self.wl.vms.iloc[v]
            raise PlacementError([Problem(self.sc.file, f"vms.{row.group_index}", f"VM {row['name']!r} (type "
                                          f"{row.vm_type}) arriving at {now:g} s fits no host (needs "
                                          f"{self._size(v):.0f} MIPS, {self.mem_need[v]:g} MB; expected more or "
                                          "larger hosts, or on_unplaceable: reject or queue)")])

    def _depart(self, v: int) -> None:
        now, st = self.env.now, self.state
        self.alive[v] = False
        self.departed[v] = True
        if v in self.queue:
            self.queue.remove(v)
            self.queue_end[v] = now
        if st.vm_dest[v] >= 0 and self.migrations is not None:
            self.migrations.cancel_vm(v, "departed")
        if self.failures is not None:
            self.failures.forget(v)  # down when it leaves: it stays down until now and never restarts
        st.depart(v)
        if self.forget_stuck is not None:
            self.forget_stuck([v])

    def _enqueue(self, v: int, now: float) -> None:
        self.queue.append(v)
        self.queued_at[v] = now
        if self.sc.max_wait_s is not None:
            self.env.process(self._expire_at(now + self.sc.max_wait_s))

    def _expire_at(self, t: float):
        yield self.env.timeout(max(t - self.env.now, 0.0))
        self._expire()
        self._try_queue(at_edge=False)

    def _expire(self) -> None:
        if self.sc.max_wait_s is None or not self.queue:
            return
        now = self.env.now
        for v in [v for v in self.queue if now - self.queued_at[v] >= self.sc.max_wait_s - 1e-9]:
            self.queue.remove(v)
            self.queue_end[v] = now
            self.rejected[v] = True

    def _try_queue(self, at_edge: bool) -> None:
        while self.queue:
            v = self.queue[0]
            h = self._place(v)
            if h < 0:
                return  # the head waits, and everyone behind it
            self.queue.pop(0)
            self.queue_end[v] = self.env.now
            self._boot(v, h, at_edge)

    def retry(self) -> None:
        """Each interval edge: events due, expiries, the queue."""
        self.advance(at_edge=True)

    def _boot(self, v: int, h: int, at_edge: bool) -> None:
        self.state.arrive(v, h, self.env.now)
        self.placed_ever[v] = True
        if self.first_host[v] < 0:
            self.first_host[v] = h
        if not at_edge:
            self.boots.append((v, h, self.env.now))

    # --- placement -----------------------------------------------------------------------------------------

    def _k(self) -> int:
        return min(int(self.env.now // self.sc.interval_s), self.sc.n_intervals - 1)

    def _sizes(self) -> np.ndarray:
        """Every VM's CPU size now by the placement's cpu_basis (MIPS): (VMs,), or with the overhead model
        (VMs, host types), the demand plus the overhead and backend it would cost on each type, as the initial
        placement sizes VMs (computed once per interval)."""
        basis = self.sc.placement.cpu_basis
        k = self._k()
        if basis == "nominal":
            size, at = self.wl.nominal_mips, None
        elif basis == "peak_demand":
            size, at = self.peak_mips, None
        else:
            size, at = self.rate_mips(k), k
        if self.om is None:
            return size
        key = -1 if at is None else at
        if self._sizing is None or self._sizing[0] != key:
            util = size / self.wl.nominal_mips
            self._sizing = (key, size[:, None] + self.om.sizing_mips(at, util, len(self.state.hosts.types)))
        return self._sizing[1]

    def _size(self, v: int) -> float:
        size = self._sizes()[v]
        return float(np.min(size))

    def _place(self, v: int) -> int:
        """The host VM `v` goes to now (-1: none has room)."""
        st, hosts = self.state, self.state.hosts
        sizes = self._sizes()
        if self.detector is not None and self.om is None:
            snap = st.snapshot(sizes, np.zeros((0, len(st.vm_host))), np.zeros(len(hosts)))
            placed = plan_restarts(snap, self.detector, np.array([v]), st.unavailable)
            return placed[0][1] if placed else -1
        where = np.where(st.vm_dest >= 0, st.vm_dest, st.vm_host)  # memory stays reserved on a destination
        on = where >= 0
        # with the overhead model each VM counts its size on the type of the host it is on
        used = sizes[np.flatnonzero(on), hosts.host_type[where[on]]] if sizes.ndim == 2 else sizes[on]
        cpu_used = np.bincount(where[on], weights=used, minlength=len(hosts))
        mem_used = np.bincount(where[on], weights=self.mem_need[on], minlength=len(hosts))
        pools = st.devices.pools
        free = hosts.pool_capacity - np.stack([np.bincount(where[on], weights=pools[on, p], minlength=len(hosts))
                                               for p in range(pools.shape[1])], axis=1).astype(np.int64)
        limit = hosts.capacity_mips * self.sc.cpu_overcommit
        limit = np.where(st.unavailable, -1.0, limit)
        tries = [limit]
        if self.sc.power_off_idle_hosts:
            holding = np.bincount(where[on], minlength=len(hosts)) > 0
            tries = [np.where(holding, limit, -1.0), limit]  # the hosts on first, then switch one on
        for lim in tries:
            h = place(self.sc.placement.policy, sizes[[v]], self.mem_need[[v]], lim, hosts.memory_mb,
                      host_capacity_mips=hosts.capacity_mips, curves_w=hosts.curves_w, host_type=hosts.host_type,
                      host_cpu_used_mips=cpu_used, host_mem_used_mb=mem_used, vm_pools=pools[[v]],
                      host_pools=free)[0]
            if h >= 0:
                return int(h)
        return -1

    def _rates(self, k0: int, util: np.ndarray) -> np.ndarray:
        """Each VM's demand while alive (MIPS) in intervals k0, k0 + 1, ...: (len(util), VMs) from `util`, those
        intervals' rows of the grid (float32, the interval's mean over the whole interval)."""
        nominal = self.wl.nominal_mips[None, :]
        share = self._share(np.arange(k0, k0 + len(util))[:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(share > 0, util / share, 0.0) * nominal
        # never more than its vCPUs: float32 utilisation over a share can exceed 1 by a rounding, and a VM the size
        # of a host would then fit no host until the next interval edge
        return np.minimum(rate, nominal)

    def rate_mips(self, k: int) -> np.ndarray:
        """Each VM's demand while alive in interval k (MIPS), (VMs,)."""
        if self._rate is None or self._rate[0] != k:
            self._rate = (k, self._rates(k, self.wl.cpu_util[k][None, :])[0])
        return self._rate[1]

    # --- accounting ----------------------------------------------------------------------------------------

    def _share(self, k: int | np.ndarray) -> np.ndarray:
        """The share of interval k each VM is alive (0..1); `k` an (n, 1) array of intervals gives (n, VMs)."""
        dt = self.sc.interval_s
        t0 = k * dt
        return np.clip((np.minimum(self.end_s, t0 + dt) - np.maximum(self.start_s, t0)) / dt, 0.0, 1.0)

    def util_alive(self, k: int, util: np.ndarray) -> np.ndarray:
        """Each VM's CPU utilisation (0..1) while alive in interval k, whose mean over the interval is `util`."""
        share = self._share(k)
        return np.minimum(np.divide(util, share, out=np.zeros(len(util)), where=share > 0), 1.0)

    def hosted(self, ov: IntervalOverhead, k: int, vm_host: np.ndarray) -> IntervalOverhead:
        """Interval k's overhead of the VMs on a host at its start, priced at util_alive for the whole interval,
        times the share of the interval each lives (it leaves at its end_s): a VM without a host costs nothing."""
        return _weighted([(ov, np.where(vm_host >= 0, self._share(k), 0.0))])

    def interval(self, t0: float, t1: float, guest: np.ndarray, vm_host: np.ndarray,
                 ov: IntervalOverhead | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[MigrationWindow], IntervalOverhead | None]:
        """For the accounting of [t0, t1): the demand (MIPS) each VM asks of its host in its own context (a VM
        placed inside the interval asks, from its placement on, for its alive rate), its backend work (MIPS), the
        demand it spent queued, each placement inside the interval as a boot window, and the interval's overhead
        (`ov`, the tick's, from hosted(), plus each placed VM's on the host it was placed on from its placement
        on; None without the overhead model). Overhead and backend of a VM placed inside the interval are asked
        with its guest work on its new host (a boot window carries no backend of its own)."""
        dt = t1 - t0
        a = np.clip((self.start_s - t0) / dt, 0.0, 1.0)
        u = np.clip((self.end_s - t0) / dt, 0.0, 1.0)
        alive = np.maximum(u - a, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(alive > 0, guest / alive, 0.0)  # demand per unit of the interval while alive
        qa = np.clip((np.nan_to_num(self.queued_at, nan=np.inf) - t0) / dt, 0.0, 1.0)
        qb = np.clip((np.nan_to_num(self.queue_end, nan=np.inf) - t0) / dt, 0.0, 1.0)
        queued = rate * np.maximum(np.minimum(qb, u) - np.maximum(qa, a), 0.0)
        windows, later, booted = [], [], []
        # a host failure in the interval destroys the work of the VMs it stops since the interval began
        # (engine/failures.py): a VM placed here and stopped by a failure is not served from its placement
        crashed = {v for v, t in self.failures.crashes if t < t1} if self.failures is not None else set()
        for v, h, t in self.boots:
            if t >= t1:
                later.append((v, h, t))
                continue
            if t <= t0 + 1e-9 and vm_host[v] == h:
                continue  # placed at the interval's start, before the tick looked: already on its host there
            booted.append((v, h, (t - t0) / dt))
            if v in crashed:
                continue  # asks only from its placement on, but is served only once the failures restart it
            windows.append(MigrationWindow(vm=v, source=-1, destination=h, start=max(t - t0, 1e-9),
                                           end=max(t - t0, 1e-9), downtime_s=0.0, source_extra_mips=0.0,
                                           destination_extra_mips=0.0))
        self.boots = later
        if ov is not None and any(v not in crashed for v, _, _ in booted):
            # price the placed VMs on their new hosts (beside the VMs there at the start), from placement to end
            k = min(int(round(t0 / dt)), self.sc.n_intervals - 1)
            after = vm_host.copy()
            on = np.zeros(len(guest))
            for v, h, p in booted:
                if v not in crashed:  # down: no host, no overhead
                    after[v] = h
                    on[v] = max(u[v] - p, 0.0)
            util = self.util_alive(k, self.wl.cpu_util[k].astype(np.float64))
            hosts = self.state.hosts
            ov = _weighted([(ov, np.ones(len(guest))),
                            (self.om.at(k, util, after, hosts.host_type, hosts.cores), on)])
        ask = guest + (ov.overhead_mips if ov is not None else 0.0)
        backend = ov.backend_mips.copy() if ov is not None else np.zeros(len(guest))
        for v, h, p in booted:
            # the account serves a boot's demand over (p, 1]: ask what the VM does from p to its end
            extra = ov.overhead_mips[v] + ov.backend_mips[v] if ov is not None else 0.0
            ask[v] = (rate[v] * max(u[v] - p, 0.0) + extra) / max(1.0 - p, 1e-12)
            backend[v] = 0.0
        return ask, backend, queued, windows, ov

    def live_in(self, t0: float, t1: float) -> tuple[int, int]:
        """VMs alive at some time in [t0, t1), and VMs waiting in the queue at some time in it."""
        lives = self.end_s > self.start_s
        live = int((lives & (self.start_s < t1) & (self.end_s > t0)).sum())
        qa = np.nan_to_num(self.queued_at, nan=np.inf)
        qb = np.nan_to_num(self.queue_end, nan=np.inf)
        waiting = int(((qa < t1) & (qb > t0) & (qb > qa)).sum())
        return live, waiting

    def close(self, now: float) -> None:
        """The run ends: whoever still waits stops waiting now."""
        for v in self.queue:
            self.queue_end[v] = now

    def life_s(self, duration_s: float) -> np.ndarray:
        """Each VM's seconds alive within the run [0, duration_s]."""
        return np.maximum(np.minimum(self.end_s, duration_s) - np.maximum(self.start_s, 0.0), 0.0)

    @property
    def waits_s(self) -> np.ndarray:
        """How long each VM that queued waited (s)."""
        q = ~np.isnan(self.queued_at)
        return self.queue_end[q] - self.queued_at[q]


def _weighted(parts: list[tuple[IntervalOverhead, np.ndarray]]) -> IntervalOverhead:
    """The sum over `parts` of each overhead's per-VM figures times its weight per VM (0..1). The per-reason totals
    are summed over VMs, so each part's are weighted by the VMs' shares of its overhead (exact in sum, an
    approximation in the split, as costmodel.interval.blend)."""
    out = {}
    for f in fields(IntervalOverhead):
        if f.name == "reason_mips":
            total = 0.0
            for ov, w in parts:
                cost = ov.overhead_mips + ov.backend_mips
                whole = float(cost.sum())
                share = float((w * cost).sum()) / whole if whole > 0 else (float(w.mean()) if len(w) else 0.0)
                total = total + ov.reason_mips * share
            out[f.name] = total
            continue

        def mix(get):
            return sum(get(ov) * (w[:, None] if get(ov).ndim == 2 else w) for ov, w in parts)

        value = getattr(parts[0][0], f.name)
        if isinstance(value, dict):
            out[f.name] = {c: mix(lambda ov, c=c, n=f.name: getattr(ov, n)[c]) for c in value}
        else:
            out[f.name] = mix(lambda ov, n=f.name: getattr(ov, n))
    return IntervalOverhead(**out)
