"""One round of dynamic consolidation (Beloglazov & Buyya 2012, as CloudSim 3.0.3 encodes it), as a pure
function of a snapshot of the datacenter:

1. detect overloaded hosts; from each, select VMs (MMT, MU, RS, MC) until it is no longer overloaded;
2. place them by power-aware best-fit decreasing (PABFD) on hosts that are neither overloaded nor off and
   would not become overloaded (by the same detector) with the VM;
3. then repeatedly take the least-utilised remaining host and try to move all its VMs elsewhere the same way;
   all or none: a host that cannot be emptied keeps its VMs.

It returns the moves; the engine runs them as migrations. Only hosts and VMs are arrays; the loops are over
hosts to empty and VMs to move, each choice one vectorised pass over all hosts.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from consolidate.hardware.assignment import FREE_NAMES, NVME
from consolidate.hardware.power import power_w
from consolidate.policies import kernel
from consolidate.policies.overload import linear_forecast, linear_overloaded
from consolidate.policies.registry import Detector, Selector
from consolidate.policies.selection import LEAST_OF


@dataclass
class Snapshot:
    """What a consolidation round sees. VMs in migration (`vm_busy`) count on their destination
    (`vm_dest`) for load and memory, cannot be selected, and pin both their hosts against evacuation."""

    vm_host: np.ndarray  # (V,) current host, -1 = not placed
    vm_dest: np.ndarray  # (V,) destination of a VM in migration, else -1
    vm_demand_mips: np.ndarray  # (V,) CPU the VM asks for now
    vm_vcpus: np.ndarray  # (V,)
    vm_ram_mb: np.ndarray  # (V,)
    vm_history_mips: np.ndarray  # (L, V) past demand, most recent last, NaN before the VM existed
    host_capacity_mips: np.ndarray  # (H,)
    host_mips_per_core: np.ndarray  # (H,)
    host_memory_mb: np.ndarray  # (H,)
    host_type: np.ndarray  # (H,)
    curves_w: np.ndarray  # (types, 11)
    host_migration_intervals: np.ndarray  # (H,) longest migration of the host's VMs, in scheduling intervals
    vm_mem_need_mb: np.ndarray | None = None  # memory a VM needs where it goes (default: its RAM)
    # CloudSim 3.0.3 reads part of a host's state from its last update, not from the round's working copy: the
    # power it subtracts to price a placement (PowerHost.getPower), which hosts count as switched off and which
    # is least utilised (getUtilizationOfCpu); the utilisation after a placement and the "host is on, check
    # overload" test sum the VMs placed so far (getUtilizationOfCpuMips). So a host that took VMs earlier in the
    # round looks dearer than it is, and VMs spread onto hosts switched on in the same round.
    stale_utilization: bool = False
    # directly assigned devices (hardware.assignment): a VM holding some may only land where each of its pools
    # has a free device of the model its driver is bound to. A failover VM appears without its VF (it can run
    # paravirtual) but keeps its NIC model (to get a VF back). None: no VM holds a device
    vm_pools: np.ndarray | None = None  # (V, POOLS) bool: devices the VM needs where it goes
    vm_models: np.ndarray | None = None  # (V, POOLS) model its driver is bound to in each pool, -1 none
    host_pool_capacity: np.ndarray | None = None  # (H, POOLS) devices available to VMs
    host_pool_model: np.ndarray | None = None  # (H, POOLS) model of each pool, -1 none
    host_unavailable: np.ndarray | None = None  # (H,) hosts being drained or down: they take no VM
    pinned: np.ndarray | None = None  # (V,) VMs never migrated (they hold a device their group pins)
    # CloudSim 3.0.3's round (cloudsim_compat): selectors see candidates in the order they joined their host
    # (vm_joined, smaller first) and its selector variants (demand relative to vm_mips, the VM's own MIPS); the
    # underload step may empty a host that has just received VMs from an overloaded one, moving those VMs again
    # (getMigrationMapFromUnderUtilizedHosts excludes the destinations of a list it has just created empty); and
    # a VM being created is checked for overload as if alone on the host (the VMs created before it ask for no
    # CPU until their cloudlets arrive), though capacity and the PABFD price count them
    compat: bool = False
    vm_mips: np.ndarray | None = None  # (V,) the VM's own MIPS (vCPUs x MIPS per vCPU)
    vm_joined: np.ndarray | None = None  # (V,) when the VM joined its host (any increasing counter)

    @property
    def vm_pinned(self) -> np.ndarray:
        return self.pinned if self.pinned is not None else np.zeros(len(self.vm_host), bool)

    @property
    def mem_need(self) -> np.ndarray:
        return self.vm_ram_mb if self.vm_mem_need_mb is None else self.vm_mem_need_mb

    @property
    def vm_busy(self) -> np.ndarray:
        return self.vm_dest >= 0


class Move(NamedTuple):  # a tuple, not a frozen dataclass: a round at scale makes thousands, 10x cheaper
    vm: int
    source: int  # host
    destination: int  # host
    reason: str  # "overload", "underload" or "maintenance"


FIRST_FIT_BLOCK = 32  # hosts per block of _FirstFit's index


class _Work:
    """Mutable working copy of loads during one round (histories only for detectors that read them)."""

    def __init__(self, s: Snapshot, det: Detector | None = None, with_history: bool = True):
        self.s = s
        self.det = det
        # a regression that is a fixed weighted sum of the history needs only its two sums per host, not the
        # host's history (overload.LinearForecast)
        self.line = linear_forecast(det) if det is not None and det.reads_history else None
        with_history = (det.reads_history if det is not None else with_history) and self.line is None
        self.with_history = with_history
        # a sample no VM of a host has yet is missing (NaN), not 0: hist_n counts the VMs that have each one
        self.vm_hist = np.nan_to_num(s.vm_history_mips) if with_history else None
        self.vm_has = (~np.isnan(s.vm_history_mips)).astype(float) if with_history else None
        H = len(s.host_capacity_mips)
        where = np.where(s.vm_busy, s.vm_dest, s.vm_host)  # a migrating VM counts where it is going
        placed = where >= 0
        self.where = where.astype(np.int64)  # a copy, and one index type for policies.kernel
        # float64 even when nothing is placed yet: bincount of no VM at all gives integers, which would truncate
        # every load place_all then adds to whole MIPS
        self.load = np.bincount(where[placed], weights=s.vm_demand_mips[placed], minlength=H).astype(np.float64)
        need = s.mem_need
        self.mem = np.bincount(where[placed], weights=need[placed], minlength=H).astype(np.float64)
        # a migrating VM also holds its source's memory until it completes
        busy = s.vm_busy & (s.vm_host >= 0)
        self.mem += np.bincount(s.vm_host[busy], weights=need[busy], minlength=H)
        hist = self.vm_hist if with_history else np.zeros((0, len(where)))
        self.hist = np.stack([np.bincount(where[placed], weights=row[placed], minlength=H) for row in hist], axis=1) \
            if hist.shape[0] else np.zeros((H, 0))
        self.hist_n = np.stack([np.bincount(where[placed], weights=row[placed], minlength=H) for row in self.vm_has],
                               axis=1) if hist.shape[0] else np.zeros((H, 0))
        if self.line is not None:
            self._line_sums(where, placed)
        self.power = power_w(self.load / s.host_capacity_mips, s.curves_w, s.host_type)
        # load, room and seen_on are views of buffers padded to whole _FirstFit blocks (a padding host never fits)
        nb = -(-H // FIRST_FIT_BLOCK)
        self._load_buf = np.full(nb * FIRST_FIT_BLOCK, np.inf)
        self._load_buf[:H] = self.load
        self.load = self._load_buf[:H]
        self.curves = s.curves_w.tolist()
        self.load0, self.power0 = self.load.copy(), self.power.copy()
        self.devices = s.vm_pools is not None and bool(s.vm_pools.any())
        if self.devices:
            self.pool_used = np.zeros(s.host_pool_capacity.shape)
            np.add.at(self.pool_used, where[placed], s.vm_pools[placed])
        self.pinned = np.zeros(H, bool)  # hosts with VMs in migration in or out
        self.pinned[s.vm_dest[s.vm_busy]] = True
        self.pinned[s.vm_host[busy]] = True
        # room left per host, kept up to date by move(): rows memory (MB), CPU (MIPS); the 1e-9 lets a VM that
        # exactly fills a host fit despite rounding
        self._room_buf = np.full((3, len(self._load_buf)), -np.inf)
        self._room_buf[:, :H] = np.stack([s.host_memory_mb + 1e-9 - self.mem, s.host_capacity_mips + 1e-9 - self.load,
                                          s.host_mips_per_core + 1e-9])
        self.room = self._room_buf[:, :H]
        self.curve_flat = s.curves_w[s.host_type].ravel()  # each host's power curve, 11 points apart
        # which hosts hold VMs now: only these and the first empty host of each type can win a PABFD search, so a
        # search looks at a few dozen hosts, not all; a host joins or leaves the set when its load crosses zero
        self._on_buf = np.ones(len(self._load_buf), bool)
        self._on_buf[:H] = self.load > 0
        self.seen_on = self._on_buf[:H]
        self.type_hosts = [np.flatnonzero(s.host_type == t) for t in range(len(s.curves_w))]
        self._sets = None
        self.touched: list[int] = []  # every host whose load changed, in order (the underload walk's cursor)
        self.first_fit: _FirstFit | None = None  # built by the first PABFD search that can use it

    def _line_sums(self, where: np.ndarray, placed: np.ndarray) -> None:
        """Per VM and per host (MIPS): the history's weighted sums y @ a and y @ b of the detector's
        LinearForecast, and whether the history is long enough (per host: how many of its VMs make it so)."""
        s, line, H = self.s, self.line, len(self.load)
        L, hist = line.length, s.vm_history_mips
        T, V = hist.shape
        if T >= L:
            y = np.nan_to_num(hist[-L:])  # a missing sample only counts in histories that are not `enough`
            self.vm_ya, self.vm_yb = line.a @ y, line.b @ y
            if line.trimmed:  # CloudSim's trimmed history keeps L samples when one L or more back is non-zero
                # (demand is never negative: a host's sum is non-zero exactly when one of its VMs' is)
                enough = (np.nan_to_num(hist[:T - L + 1]) != 0).any(axis=0)
            else:  # every one of the last L samples present (a VM's samples run from its start to now)
                enough = ~np.isnan(hist[-L:]).any(axis=0)
        else:
            self.vm_ya, self.vm_yb, enough = np.zeros(V), np.zeros(V), np.zeros(V, bool)
        self.vm_enough = enough.astype(float)
        self.ya = np.bincount(where[placed], weights=self.vm_ya[placed], minlength=H)
        self.yb = np.bincount(where[placed], weights=self.vm_yb[placed], minlength=H)
        self.enough = np.bincount(where[placed], weights=self.vm_enough[placed], minlength=H)

    def overloaded(self, hosts: np.ndarray, add: int = -1, alone: bool = False) -> np.ndarray:
        """The detector's verdict on `hosts` (indices) as they are in this round, or with VM `add` placed on
        each of them (alone: as if the VM were the host's only one, CloudSim's creation check)."""
        s, det = self.s, self.det
        cap = s.host_capacity_mips[hosts]
        load = 0.0 if alone else self.load[hosts]
        if add >= 0:
            load = load + s.vm_demand_mips[add]
        util = load / cap
        mig = s.host_migration_intervals[hosts]
        if self.line is not None:
            ya, yb, n = (0.0, 0.0, 0.0) if alone else (self.ya[hosts], self.yb[hosts], self.enough[hosts])
            if add >= 0:
                ya, yb, n = ya + self.vm_ya[add], yb + self.vm_yb[add], n + self.vm_enough[add]
            return linear_overloaded(det.param, util, ya / cap, yb / cap, self.line.length + mig,
                                     np.asarray(n > 0))
        if not self.with_history:
            return det.overloaded(util, None, mig)
        hist, have = (0.0, 0.0) if alone else (self.hist[hosts], self.hist_n[hosts])
        if add >= 0:
            hist, have = hist + self.vm_hist[:, add][None, :], have + self.vm_has[:, add][None, :]
        return det.overloaded(util, np.where(have > 0, hist / cap[:, None], np.nan), mig)

    def on_sets(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """(hosts seen on, sorted; per host type, the hosts seen off, sorted)."""
        if self._sets is None:
            on = self.seen_on
            self._sets = (np.flatnonzero(on), [h[~on[h]] for h in self.type_hosts])
        return self._sets

    def util(self, hosts=slice(None)) -> np.ndarray:
        return self.load[hosts] / self.s.host_capacity_mips[hosts]

    def hist_util(self, hosts=slice(None)) -> np.ndarray:
        h = self.hist[hosts] / self.s.host_capacity_mips[hosts, None]
        return np.where(self.hist_n[hosts] > 0, h, np.nan)

    def move(self, v: int, frm: int, to: int) -> None:
        s = self.s
        d, r = s.vm_demand_mips[v], s.mem_need[v]
        for host, sign in ((frm, -1.0), (to, 1.0)):
            if host < 0:
                continue
            self.load[host] += sign * d
            self.mem[host] += sign * r
            self.room[0, host] -= sign * r
            self.room[1, host] -= sign * d
            if self.with_history:
                self.hist[host] += sign * self.vm_hist[:, v]
                self.hist_n[host] += sign * self.vm_has[:, v]
            elif self.line is not None:
                self.ya[host] += sign * self.vm_ya[v]
                self.yb[host] += sign * self.vm_yb[v]
                self.enough[host] += sign * self.vm_enough[v]
            self.power[host] = _power_one(self.load[host] / s.host_capacity_mips[host], self.curves[s.host_type[host]])
            if self.devices:
                self.pool_used[host] += sign * s.vm_pools[v]
            if (self.load[host] > 0) != self.seen_on[host]:
                self.seen_on[host] = not self.seen_on[host]
                self._sets = None
            self.touched.append(host)
            if sign < 0 and self.first_fit is not None:
                self.first_fit.moved(host)
        self.where[v] = to


def _power_one(util: float, curve: list[float]) -> float:
    """power_w for one host, without numpy's per-call overhead (called once per VM moved)."""
    pos = min(max(util, 0.0), 1.0) * 10.0
    lo = min(int(pos), 9)
    return curve[lo] + (pos - lo) * (curve[lo + 1] - curve[lo])


def _rise_floor(s: Snapshot) -> tuple[float, float, float]:
    """What bounds any host's power rise from below (see _FirstFit.floor): the least rise per MIPS of demand any
    host can have (W/MIPS: its curve's least slope per 10% of its capacity), and the margins: a host may take a VM
    up to 1e-9 MIPS (and the room's rounding) past its capacity, where the curve is clipped (MIPS); the rises
    themselves carry a few ulps of the curve's watts (W)."""
    per_mips = 10.0 * np.diff(s.curves_w, axis=1).min(axis=1)[s.host_type] / s.host_capacity_mips
    return (float(per_mips.min()) if len(per_mips) else 0.0,
            1e-9 + 1e-10 * float(s.host_capacity_mips.max(initial=0.0)),
            1e-11 * (1.0 + float(np.abs(s.curves_w).max(initial=0.0))))


class _FirstFit:
    """PABFD's answer without pricing every host, when that answer is the lowest-indexed host that fits.

    PABFD takes the host whose power rises least, ties (within 1e-6 W) going to the lowest index. No host can rise
    by less than `floor` (the least slope of any power curve times the VM's demand, less a margin for rounding), so
    when the lowest-indexed host that fits rises by at most floor + 1e-6 W it is PABFD's answer: always so with
    linear power curves, whose hosts all rise alike. The search walks blocks of FIRST_FIT_BLOCK hosts in index
    order and tests their hosts exactly as the full search does, skipping a block whose bounds say no host in it
    can take the VM: the least load of its hosts that are on, its best memory and CPU room, whether it has a host
    that is off, over the hosts not excluded. The bounds stay safe without recomputing them: a host that loses a
    VM widens its block's bounds at once (moved()), one that gains a VM or gets excluded leaves them loose until
    a search walks the block in vain and tightens it. So `excluded` may only gain hosts between searches; a new
    array recomputes every bound. Only for a static threshold, no device pools and the round's own view of power;
    when the lowest-indexed host rises more (curves that are not linear), find() returns None and the full search
    decides."""

    def __init__(self, w: _Work, threshold: float):
        s, B = w.s, FIRST_FIT_BLOCK
        self.w, H, n = w, len(w.load), len(w._load_buf)
        self.nb = nb = n // B
        self.offsets = np.arange(B)
        self.thr_cap = np.full(n, -np.inf)
        self.thr_cap[:H] = threshold * s.host_capacity_mips  # the detector's test: load + d <= this
        self.thr_max = self.thr_cap.reshape(nb, B).max(axis=1)
        self.core_max = w._room_buf[2].reshape(nb, B).max(axis=1)
        self.min_on, self.mem_max, self.cpu_max = np.empty(nb), np.empty(nb), np.empty(nb)
        self.has_off = np.empty(nb, bool)
        self.excluded = None  # the array the bounds were last computed for (by identity)
        self.per_mips, self.overshoot_mips, self.eps_w = _rise_floor(s)
        self.hits = self.misses = 0

    def _tighten(self, blocks: np.ndarray, idx: np.ndarray, excluded: np.ndarray) -> None:
        """Exact bounds of `blocks`, whose hosts are `idx` (blocks x FIRST_FIT_BLOCK, padding included)."""
        w = self.w
        on = w._on_buf[idx]
        live = ~excluded[np.minimum(idx, len(excluded) - 1)]  # a padding host is on, never fits: no matter
        self.min_on[blocks] = np.where(on & live, w._load_buf[idx], np.inf).min(axis=1)
        self.has_off[blocks] = (live & ~on).any(axis=1)
        self.mem_max[blocks], self.cpu_max[blocks] = np.where(live, w._room_buf[:2, idx], -np.inf).max(axis=2)

    def moved(self, host: int) -> None:
        """The host lost a VM (less load, more room, maybe off): widen its block's bounds."""
        w, b = self.w, host // FIRST_FIT_BLOCK
        if w.seen_on[host]:
            load = w.load.item(host)
            if load < self.min_on.item(b):
                self.min_on[b] = load
        else:
            self.has_off[b] = True
        if w.room.item(0, host) > self.mem_max.item(b):
            self.mem_max[b] = w.room.item(0, host)
        if w.room.item(1, host) > self.cpu_max.item(b):
            self.cpu_max[b] = w.room.item(1, host)

    def floor(self, d: float) -> float:
        """A lower bound of any host's power rise (W) with a VM of demand d >= 0 MIPS."""
        k = self.per_mips
        return (k * max(d - self.overshoot_mips, 0.0) if k >= 0 else k * d * (1 + 1e-9)) - self.eps_w

    def find(self, d: float, want: np.ndarray, excluded: np.ndarray, empty_allowed: bool) -> int | None:
        """The host PABFD picks for a VM of demand d (MIPS, >= 0) and room `want` (memory, CPU, per core), -1 if
        none fits, None if only the full search can tell."""
        w, B = self.w, FIRST_FIT_BLOCK
        if excluded is not self.excluded:
            self.excluded = excluded
            every = np.arange(self.nb)
            self._tighten(every, every[:, None] * B + self.offsets, excluded)
        take = self.min_on + d <= self.thr_max
        if empty_allowed:
            take |= self.has_off
        blocks = np.flatnonzero(take & (self.mem_max >= want[0, 0]) & (self.cpu_max >= want[1, 0])
                                & (self.core_max >= want[2, 0]))
        last = len(excluded) - 1
        h, i, step = -1, 0, 2
        while i < len(blocks):  # a few blocks first, then twice as many each time
            part = blocks[i:i + step]
            idx = part[:, None] * B + self.offsets
            ok = (w._room_buf[:, idx] >= want[:, :, None]).all(axis=0) & ~excluded[np.minimum(idx, last)]
            ok &= np.where(w._on_buf[idx], w._load_buf[idx] + d <= self.thr_cap[idx], empty_allowed)
            if ok.any():
                h = int(idx.ravel()[ok.argmax()])
                break
            self._tighten(part, idx, excluded)  # walked in vain: its bounds were loose
            i, step = i + step, 2 * step
        if h < 0:
            return -1
        # its rise, as the full search prices it (the same float operations, on Python floats)
        pos = min((w.load.item(h) + d) / w.s.host_capacity_mips.item(h), 1.0) * 10.0
        lo = min(int(pos), 9)
        p0 = w.curve_flat.item(h * 11 + lo)
        rise = p0 + (pos - lo) * (w.curve_flat.item(h * 11 + lo + 1) - p0) - w.power.item(h)
        if rise <= self.floor(d) + 1e-6:
            self.hits += 1
            return h
        self.misses += 1
        return None

    @property
    def worth_it(self) -> bool:
        return self.misses <= 16 or self.hits >= self.misses


def _find_host(w: _Work, v: int, excluded: np.ndarray, det: Detector, empty_allowed: bool = True,
               alone: bool = False) -> int:
    """PABFD: among hosts with room that would not be overloaded with the VM (an empty host is not checked,
    as in CloudSim), the one whose power rises least; -1 if none. Ties go to the lowest host index.
    empty_allowed=False when `excluded` covers every host seen off (it saves looking through them).
    alone: the overload check sees the VM alone on the host (CloudSim's creation; room and price count all)."""
    s = w.s
    d = s.vm_demand_mips[v]
    need, per_core = s.mem_need[v], d / s.vm_vcpus[v]
    want = np.array([[need], [d], [per_core]])
    if w.first_fit is None and det.static_threshold is not None and not s.stale_utilization and not w.devices \
            and s.vm_models is None:
        w.first_fit = _FirstFit(w, det.static_threshold)
    if w.first_fit is not None and w.first_fit.worth_it and not alone and d >= 0:
        h = w.first_fit.find(float(d), want, excluded, empty_allowed)
        if h is not None:
            return h
    pools = np.flatnonzero(s.vm_pools[v]) if w.devices else ()
    bound = np.flatnonzero(s.vm_models[v] >= 0) if s.vm_models is not None else ()

    def fits(idx: np.ndarray) -> np.ndarray:
        ok = (w.room[:, idx] >= want).all(axis=0) & ~excluded[idx]
        for p in pools:
            ok &= s.host_pool_capacity[idx, p] - w.pool_used[idx, p] >= 1
        for p in bound:  # its driver knows one model of each device it holds
            ok &= s.host_pool_model[idx, p] == s.vm_models[v, p]
        return ok

    on, off_by_type = w.on_sets()
    cand = on[fits(on)] if on.size else on
    if cand.size:
        if det.static_threshold is not None:  # the common case, without the detector's general path
            cand = cand[(0.0 if alone else w.load[cand]) + d <= det.static_threshold * s.host_capacity_mips[cand]]
        else:  # one verdict for all candidates: its cost is mostly per call, not per host
            cand = cand[~w.overloaded(cand, v, alone)]
    # empty hosts of one type are interchangeable (same curve, same rise, no overload check; one a stale view
    # still prices as on has just been emptied, and is excluded): only the lowest-indexed one that fits can
    # win; it is nearly always among the first few
    firsts = []
    for off in off_by_type if empty_allowed else ():
        for part in (off[:8], off[8:]):
            if part.size:
                ok = fits(part)
                if ok.any():
                    firsts.append(part[ok.argmax()])
                    break
    if firsts:
        cand = np.sort(np.concatenate([cand, firsts]))
    if cand.size == 0:
        return -1
    before = w.power0 if s.stale_utilization else w.power
    # power_w, inlined on the flat curves: this runs once per VM placed
    pos = np.minimum((w.load[cand] + d) / s.host_capacity_mips[cand], 1.0) * 10.0
    lo = np.minimum(pos.astype(np.int64), 9)
    at = cand * 11 + lo
    p0 = w.curve_flat[at]
    rise = p0 + (pos - lo) * (w.curve_flat[at + 1] - p0) - before[cand]
    return int(cand[np.flatnonzero(rise <= rise.min() + 1e-6)[0]])


def plan_round(s: Snapshot, det: Detector, selector: Selector, rng: np.random.Generator,
               underload: bool = True) -> list[Move]:
    """The migrations one consolidation round decides, in the order they are decided."""
    w = _Work(s, det)
    compat = s.compat
    pick = selector.pick(compat)
    # CloudSim's selectors read utilisation relative to the VM's own MIPS; its host lists keep joining order
    demand_seen = s.vm_demand_mips / s.vm_mips if compat and s.vm_mips is not None else s.vm_demand_mips
    joined = s.vm_joined if compat and s.vm_joined is not None else None
    blocked = s.host_unavailable if s.host_unavailable is not None else np.zeros(len(w.load), bool)
    active = (w.load > 0) & ~blocked
    over = active & w.overloaded(np.arange(len(w.load)))
    moves: list[Move] = []
    vm_busy, vm_pinned = s.vm_busy, s.vm_pinned
    # each host's VMs at the start of the round, ascending; a host only loses VMs before it could be emptied
    # (one that gained any is a destination, excluded from both steps), so filtering on `where` is exact
    compiled = _compiled_case(w, det)
    if compiled:
        order, bounds = kernel.group_by_host(w.where, len(w.load))
    else:
        order = np.argsort(w.where, kind="stable")
        bounds = np.searchsorted(w.where[order], np.arange(len(w.load) + 1))

    def members(h: int) -> np.ndarray:
        return order[bounds[h]:bounds[h + 1]]

    if compiled and pick in LEAST_OF:  # every step compiled
        return _compiled_steps(w, det, LEAST_OF[pick](s), [], over, blocked, order, bounds, underload)

    # 1. select VMs from overloaded hosts until each is no longer overloaded
    selected: list[tuple[int, int]] = []
    thr = det.static_threshold
    for h in np.flatnonzero(over):
        m = members(h)
        cand = m[(w.where[m] == h) & (s.vm_host[m] == h) & ~vm_busy[m] & ~vm_pinned[m]]
        if joined is not None:
            cand = cand[np.argsort(joined[cand], kind="stable")]
        while cand.size:
            v = pick(cand, s.vm_ram_mb, demand_seen, s.vm_history_mips, rng)
            w.move(v, h, -1)
            selected.append((v, h))
            # a static threshold's verdict on one host, without the detector's array call
            if not (w.load.item(h) / s.host_capacity_mips.item(h) > thr if thr is not None else
                    w.overloaded(np.array([h]))[0]):
                break
            cand = cand[cand != v]  # the others stay candidates, in the same order

    # 2. place them, biggest first, away from overloaded hosts (an empty host may be switched on for them)
    # biggest first, ties in the order selected (a stable sort)
    by_size = np.argsort(-s.vm_demand_mips[[v for v, _ in selected]], kind="stable").tolist() if selected else []
    if compiled:
        return _compiled_steps(w, det, None, [selected[i] for i in by_size], over, blocked, order, bounds, underload)
    unplaced = []
    arrived: dict[int, list[int]] = {}  # destination -> VMs it received in this round
    away = over | blocked
    for i in by_size:
        v, h = selected[i]
        dest = _find_host(w, v, away, det)
        if dest >= 0:
            w.move(v, -1, dest)
            moves.append(Move(v, h, dest, "overload"))
            arrived.setdefault(dest, []).append(v)
        else:
            unplaced.append((v, h))
    for v, h in unplaced:  # stays where it was
        w.move(v, -1, h)
    if not underload:
        return moves

    # 3. empty the least-utilised hosts, all VMs or none, never onto a switched-off host
    seen = w.load0 if s.stale_utilization else w.load
    off = seen <= 0
    excluded_under = over | off | w.pinned | blocked
    if not compat:  # CloudSim 3.0.3 means to exclude them too, but its list of them is still empty here
        excluded_under[[m.destination for m in moves]] = True
    excluded_place = over | off | blocked
    # with stale utilisation the hosts' order never changes in the round: walk it once, skipping the excluded
    static = iter(np.argsort(np.where(excluded_under, np.inf, w.load0 / s.host_capacity_mips), kind="stable")) \
        if s.stale_utilization else None
    # otherwise the least-utilised host comes from a heap of (utilisation, host): the same choice as an argmin over
    # all hosts (ties to the lowest index), but a host is pushed again only when its load changes; an entry whose
    # host is excluded, empty or no longer at that utilisation is dropped when it surfaces
    cap = s.host_capacity_mips
    if static is None:
        cand = np.flatnonzero(~excluded_under & (w.load > 0))
        heap = list(zip((w.load[cand] / cap[cand]).tolist(), cand.tolist()))
        heapq.heapify(heap)
        cursor = len(w.touched)
    while True:
        if static is not None:
            h = next((int(x) for x in static if not excluded_under[x]), -1)
            if h < 0 or w.load0[h] <= 0:
                break
        else:
            for x in w.touched[cursor:]:
                if not excluded_under[x] and w.load[x] > 0:
                    heapq.heappush(heap, (float(w.load[x] / cap[x]), x))
            cursor = len(w.touched)
            h = -1
            while heap:
                u, x = heapq.heappop(heap)
                if not excluded_under[x] and w.load[x] > 0 and u == w.load[x] / cap[x]:
                    h = x
                    break
            if h < 0:
                break
        excluded_under[h] = excluded_place[h] = True
        m = members(h)
        vms = m[(w.where[m] == h) & ~vm_busy[m]]
        if h in arrived:  # only under compat: VMs that arrived this round move again, from where they were
            vms = np.concatenate([vms, np.array(arrived[h], dtype=vms.dtype)])
        if vms.size == 0 or vm_pinned[vms].any():
            continue  # a host holding a pinned VM cannot be emptied
        tentative = []
        for v in vms[np.argsort(-s.vm_demand_mips[vms], kind="stable")].tolist():
            # every host seen off is in excluded_place: those off at the start, and those emptied since
            dest = _find_host(w, v, excluded_place, det, empty_allowed=False)
            if dest < 0:
                break
            w.move(int(v), h, dest)
            # a VM that arrived this round starts its second migration from its original host, as CloudSim's
            # migration map does (both moves are made and counted)
            tentative.append(Move(int(v), int(s.vm_host[v]), dest, "underload"))
        if len(tentative) < vms.size:
            for m in reversed(tentative):
                w.move(m.vm, m.destination, h)
            continue
        moves.extend(tentative)
        excluded_under[[m.destination for m in tentative]] = True
    return moves


def _compiled_case(w: _Work, det: Detector) -> bool:
    """Whether policies.kernel runs the round's steps 2 and 3: a static threshold, the round's own view of
    power (not CloudSim's stale one, nor its compat round), no directly assigned devices, and enough hosts for
    compiling to pay."""
    s = w.s
    return det.static_threshold is not None and not s.stale_utilization and not s.compat and not w.devices \
        and s.vm_models is None and len(w.load) >= kernel.MIN_HOSTS


def _compiled_steps(w: _Work, det: Detector, key: np.ndarray | None, selected: list[tuple[int, int]],
                    over: np.ndarray, blocked: np.ndarray, order: np.ndarray, start: np.ndarray,
                    underload: bool) -> list[Move]:
    """plan_round's steps by policies.kernel: all three, selecting by the least `key` per VM, or (key None)
    steps 2 and 3 from the state step 1 left, `selected` (VM, host) biggest first. The moves are those the Python
    steps decide."""
    s = w.s
    i64, f64 = np.int64, np.float64
    sel = np.array(selected, dtype=i64).reshape(-1, 2)
    vm, src, dst, why = kernel.round_steps(
        key is not None, np.asarray(key if key is not None else s.vm_ram_mb, f64), float(det.static_threshold),
        np.ascontiguousarray(sel[:, 0]), np.ascontiguousarray(sel[:, 1]), np.asarray(s.vm_host, i64),
        w.where, np.asarray(s.vm_busy), np.asarray(s.vm_pinned), order, start,
        np.asarray(s.vm_demand_mips, f64), np.asarray(s.mem_need, f64), np.asarray(s.vm_vcpus, f64),
        w.load, w.seen_on, w.room[0], w.room[1], w.room[2], w.power, np.asarray(s.host_capacity_mips, f64),
        det.static_threshold * s.host_capacity_mips, w.curve_flat, np.asarray(s.host_type, i64),
        len(s.curves_w), over, blocked, w.pinned, *_rise_floor(s), underload)
    reasons = ("overload", "underload")
    return list(map(Move, vm.tolist(), src.tolist(), dst.tolist(), [reasons[r] for r in why.tolist()]))


def place_all(s: Snapshot, det: Detector, sizes_mips: np.ndarray) -> np.ndarray:
    """Initial placement the way a consolidating datacenter does it (CloudSim's allocateHostForVm): VMs by
    decreasing size, each by PABFD with the detector's overload check (under compat, CloudSim's creation-time
    check: the VM as if alone on the host). Returns host per VM (-1: none)."""
    s = Snapshot(**{**s.__dict__, "vm_demand_mips": sizes_mips, "vm_host": np.full(len(sizes_mips), -1),
                    "vm_dest": np.full(len(sizes_mips), -1)})
    w = _Work(s, det)
    none = np.zeros(len(s.host_capacity_mips), bool)
    out = np.full(len(sizes_mips), -1, dtype=np.int64)
    for v in np.argsort(-sizes_mips, kind="stable"):
        dest = _find_host(w, int(v), none, det, alone=s.compat)
        if dest >= 0:
            w.move(int(v), -1, dest)
            out[v] = dest
    return out


def plan_drain(s: Snapshot, det: Detector, draining: np.ndarray) -> tuple[list[Move], list[tuple[int, str]]]:
    """Moves that empty the `draining` hosts (biggest VMs first, PABFD elsewhere), and the VMs that must stay
    with the reason: pinned to a directly assigned device, or no host with room."""
    w = _Work(s, det)
    moves, stuck = [], []
    excluded = draining if s.host_unavailable is None else draining | s.host_unavailable  # failed hosts too
    vms = np.flatnonzero(draining[np.where(s.vm_host >= 0, s.vm_host, 0)] & (s.vm_host >= 0) & ~s.vm_busy)
    for v in sorted(vms, key=lambda v: -s.vm_demand_mips[v]):
        v = int(v)
        if s.vm_pinned[v]:
            stuck.append((v, "pinned: a directly assigned device"))
            continue
        dest = _find_host(w, v, excluded, det)
        if dest < 0:
            need = np.flatnonzero(s.vm_pools[v]) if s.vm_pools is not None else ()
            kind = " and ".join(FREE_NAMES[p] for p in need)
            bound = s.vm_models is not None and bool((s.vm_models[v] >= 0).any())
            what = "NIC" if all(p != NVME for p in need) else "device"
            why = (f"no host with room and {kind} of its {what} model" if kind else
                   "no host with room and its NIC model" if bound else "no host with room")
            stuck.append((v, why))
            continue
        w.move(v, int(s.vm_host[v]), dest)
        moves.append(Move(v, int(s.vm_host[v]), dest, "maintenance"))
    return moves, stuck


def plan_restarts(s: Snapshot, det: Detector, vms: np.ndarray, excluded: np.ndarray) -> list[tuple[int, int]]:
    """Hosts for VMs that must boot again after their host failed (high-availability restart): biggest first,
    each by PABFD with the detector's overload check, never on an `excluded` host (failed, drained). Returns
    (vm, host) for those that fit; the others wait."""
    w = _Work(s, det)
    out = []
    for v in sorted((int(x) for x in vms), key=lambda v: -s.vm_demand_mips[v]):
        dest = _find_host(w, v, excluded, det)
        if dest >= 0:
            w.move(v, -1, dest)
            out.append((v, dest))
    return out
