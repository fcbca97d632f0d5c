"""What a run records, interval by interval: what results.frames turns into tables.

Nothing that grows with intervals x VMs or intervals x hosts is kept. Each interval's per-VM rows go to
`RunTotals`, which keeps the running sums the summary needs, and to an optional `IntervalSink` (the vm_intervals
frame, results/frames.py); each interval's per-host rows go to `HostTotals` (the host-based summary's running
parts) and to an optional `HostSink` (the host_intervals frame); then both are dropped. What a run keeps whole
grows with the intervals alone (datacenter totals per interval) or with the events (migrations).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from consolidate.costmodel.interval import COMPONENTS, IntervalOverhead
from consolidate.hardware.assignment import DEVICE_CLASSES


@dataclass
class IntervalRows:
    """One interval's per-VM rows, arrays of shape (VMs,), as the interval is accounted."""

    k: int  # the interval's index
    guest_mips: np.ndarray  # float32: the guests' own CPU demand
    served_mips: np.ndarray  # float32: CPU served (guest work, overhead, backend)
    vm_host: np.ndarray  # int32: host at the interval's start, -1 none
    migration_loss_mips: np.ndarray | None = None  # float32, when the run migrates: demand lost to migrations
    queued_mips: np.ndarray | None = None  # float32, with lifecycles: demand spent waiting in the queue
    overhead: IntervalOverhead | None = None  # with the overhead model: per-VM arrays as float32
    reasons: list[str] = field(default_factory=list)  # the exit-reason columns of overhead.exits_per_s

    @property
    def effective_mips(self) -> np.ndarray:
        """float32: what the host must carry for each VM, guest + overhead + backend (MIPS)."""
        ov = self.overhead
        return self.guest_mips if ov is None else self.guest_mips + ov.overhead_mips + ov.backend_mips


class IntervalSink(Protocol):
    """Takes each interval's per-VM rows while the run goes (e.g. the vm_intervals frame's writer)."""

    def put(self, rows: IntervalRows) -> None: ...


@dataclass
class HostRows:
    """One interval's per-host rows, arrays of shape (hosts,), as the interval is accounted."""

    k: int  # the interval's index
    demand_mips: np.ndarray  # float64: CPU asked of the host (effective demand of its slots)
    served_mips: np.ndarray  # float64: CPU it served
    on: np.ndarray  # bool: on at some time in the interval
    on_fraction: np.ndarray  # float32: share of the interval it is on
    overloaded: np.ndarray  # float32: share of the interval it is asked for more than its capacity
    power_w: np.ndarray  # float64: mean power over the interval (W)
    vms: np.ndarray  # int32: VMs on it at the interval's start
    memory_used_mb: np.ndarray  # float64: MiB its VMs use at the interval's start
    migrating: bool = False  # the run can migrate: its SLATAH time columns are wanted
    overhead_mips: np.ndarray | None = None  # float64, with the overhead model: its VMs' overhead at the start
    backend_mips: np.ndarray | None = None  # and their I/O backend threads' CPU


class HostSink(Protocol):
    """Takes each interval's per-host rows while the run goes (e.g. the host_intervals frame's writer)."""

    def put(self, rows: HostRows) -> None: ...


class RecordSink(Protocol):
    """Takes finished event records (engine.migration.MigrationRecord) while the run goes, oldest started first
    (e.g. the migrations frame's writer)."""

    def put(self, records: list) -> None: ...


class StreamSum:
    """The float64 sum of float32 rows fed one at a time, rounded exactly as numpy sums the whole (rows x n)
    C-ordered array with `a.sum(dtype=np.float64)`: numpy casts it in buffers of 8192 values, sums each
    pairwise and adds the buffers in order, so summing the same buffers here gives the same bits without
    holding the array."""

    BUFFER = 8192  # numpy's ufunc buffer size (np.getbufsize())

    def __init__(self) -> None:
        self._total = 0.0
        self._carry = np.empty(0)

    def add(self, row: np.ndarray) -> None:
        x = np.asarray(row, dtype=np.float64).ravel()
        if self._carry.size:  # complete the buffer the last row left open
            need = self.BUFFER - self._carry.size
            if x.size < need:
                self._carry = np.concatenate([self._carry, x])
                return
            self._total += float(np.concatenate([self._carry, x[:need]]).sum())
            x = x[need:]
        n = x.size // self.BUFFER * self.BUFFER
        for s in x[:n].reshape(-1, self.BUFFER).sum(axis=1).tolist():
            self._total += s
        self._carry = x[n:].copy()

    @property
    def value(self) -> float:
        return self._total + float(self._carry.sum()) if self._carry.size else self._total


class PairwiseSum:
    """The float64 sum of `n` float64 values fed in order, rounded exactly as numpy sums the whole contiguous
    array of them (`a.sum()`): numpy adds pairwise, splitting a block of more than 128 values at half its length
    rounded down to a multiple of 8. The split points depend only on `n`, so every block of the tree is summed
    by numpy itself as soon as all its values have arrived and only the values of the block still arriving are
    kept (fewer than 128, plus the last piece fed)."""

    BLOCK = 128  # numpy's PW_BLOCKSIZE: blocks up to this size are summed without splitting

    def __init__(self, n: int) -> None:
        self.n = n
        self._start = 0  # index of self._data[0] among the n values
        self._data = np.empty(0)
        self._done: dict[tuple[int, int], float] = {}  # sums of complete blocks whose parent is not complete
        self._total: float | None = None if n else 0.0

    def _block(self, lo: int, size: int, avail: int) -> float | None:
        """Sum of block [lo, lo + size) if all its values have arrived (then recorded for the parent), else None."""
        done = self._done.get((lo, size))
        if done is not None:
            return done
        if self._start <= lo and lo + size <= avail:  # all its values here (not a block begun in done pieces)
            return float(np.add.reduce(self._data[lo - self._start:lo - self._start + size]))
        if size <= self.BLOCK:
            return None
        half = size // 2
        half -= half % 8
        left = self._block(lo, half, avail)
        if left is None:
            return None
        if (lo, half) not in self._done:  # a complete left half: its values are no longer needed
            self._done = {key: v for key, v in self._done.items() if not lo <= key[0] < lo + half}
            self._done[(lo, half)] = left
        right = self._block(lo + half, size - half, avail)
        return None if right is None else left + right

    def add(self, values: np.ndarray) -> None:
        """Feed the next values (any shape, taken in C order; cast to float64)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        self._data = np.concatenate([self._data, x]) if self._data.size else x
        avail = self._start + self._data.size
        if avail > self.n:
            raise ValueError(f"PairwiseSum: more than the {self.n} values announced")
        total = self._block(0, self.n, avail)
        if total is not None:
            self._total, self._done, self._data = total, {}, np.empty(0)
            self._start = self.n
            return
        keep = max((lo + size for lo, size in self._done), default=0)  # values before it are summed in a block
        self._data = self._data[keep - self._start:]
        self._start = keep

    @property
    def value(self) -> float:
        """The sum, once all n values have been fed."""
        if self._total is None:
            raise ValueError(f"PairwiseSum: {self._start + self._data.size} of {self.n} values fed")
        return self._total


class RunTotals:
    """Running totals of the per-VM rows, the parts of the summary results/frames.py computes: StreamSums of a
    per-VM quantity over all VMs and intervals, and per-VM sums over the intervals (MIPS x intervals, or
    per-second rates x intervals; the results layer scales them)."""

    def __init__(self, n_vm: int, lifecycles: bool = False, overhead: bool = False):
        self.sums: dict[str, StreamSum] = {}
        self.intervals = 0
        # per VM, for what the summary groups by VM at the end: with lifecycles a VM's rejection and its network
        # I/O path (that of the first host it runs on) are known only then
        self.vm_effective_mips = np.zeros(n_vm) if lifecycles else None
        self.vm_guest_mips = np.zeros(n_vm) if overhead else None
        self.vm_virt_mips = np.zeros(n_vm) if overhead else None  # overhead + backend
        self.vm_net_served_pps = np.zeros(n_vm) if overhead else None
        self.rejected_at_start: np.ndarray | None = None  # placement at the first interval's start

    def _add(self, name: str, row: np.ndarray) -> None:
        self.sums.setdefault(name, StreamSum()).add(row)

    def __getitem__(self, name: str) -> float:
        return self.sums[name].value if name in self.sums else 0.0

    def put(self, rows: IntervalRows) -> None:
        """Add one interval's rows."""
        guest, served, eff = rows.guest_mips, rows.served_mips, rows.effective_mips
        if self.rejected_at_start is None:
            self.rejected_at_start = rows.vm_host < 0
        self.intervals += 1
        self._add("guest", guest)
        self._add("effective", eff)
        self._add("served", served)
        # served never exceeds demand; clip the float32 rounding of the two sums
        self._add("unserved", np.maximum(eff - served, 0.0))
        self._add("rejected_at_start", eff[self.rejected_at_start])
        if rows.queued_mips is not None:
            # what a VM asks while it waits for a host is queued, not unserved
            self._add("queued", rows.queued_mips)
            self._add("unserved_not_queued", np.maximum(eff - served - rows.queued_mips, 0.0))
        if self.vm_effective_mips is not None:
            self.vm_effective_mips += eff
        if rows.migration_loss_mips is not None:
            self._add("migration_loss", rows.migration_loss_mips)
        ov = rows.overhead
        if ov is None:
            return
        self._add("overhead", ov.overhead_mips)
        self._add("backend", ov.backend_mips)
        for c, arr in ov.components_mips.items():
            self._add(f"component_{c}", arr)
        for j, reason in enumerate(rows.reasons):
            self._add(f"exits_{reason}", ov.exits_per_s[:, j])
        self._add("tlb_flushes", ov.tlb_flushes_per_s)
        self.vm_guest_mips += guest
        self.vm_virt_mips += ov.overhead_mips + ov.backend_mips
        self.vm_net_served_pps += ov.io_served["net"]
        self._add("net_demand", ov.io_demand["net"])
        self._add("net_unserved", ov.io_demand["net"] - ov.io_served["net"])


class HostTotals:
    """Running parts of the host-based summary, fed each interval's HostRows: datacenter totals per interval
    (hosts on, power in W: O(intervals), kept whole), and sums over every host-interval rounded as numpy rounds
    them over the whole (intervals x hosts) arrays (energy, SLATAH's on and overloaded time, both in shares of an
    interval) so the summary is the same to the last bit as when those arrays were kept."""

    def __init__(self, n_int: int, n_hosts: int, interval_s: float):
        self.interval_s = interval_s
        self.active = np.zeros(n_int, np.int64)  # hosts on per interval
        self.power_w = np.zeros(n_int)  # datacenter power per interval (W)
        self.energy_kwh = PairwiseSum(n_int * n_hosts)
        self.on_time = PairwiseSum(n_int * n_hosts)  # shares of an interval
        self.overloaded_time = StreamSum()  # float32 shares of an interval
        self.on_host_intervals = 0  # how many host-intervals had the host on (host_cpu_util_mean's count)
        self.shutdowns = 0  # hosts holding VMs at one interval's start and none at the next's
        self._held: np.ndarray | None = None  # hosts holding VMs at the last interval's start

    def put(self, rows: HostRows) -> None:
        """Add one interval's rows."""
        k = rows.k
        on = rows.on
        self.active[k] = int(on.sum())
        self.power_w[k] = rows.power_w.sum()
        self.energy_kwh.add(rows.power_w * self.interval_s / 3.6e6)
        self.on_time.add(rows.on_fraction.astype(np.float64))
        self.overloaded_time.add(rows.overloaded)
        self.on_host_intervals += int(self.active[k])
        holds = rows.vms > 0
        if self._held is not None:
            self.shutdowns += int((self._held & ~holds).sum())
        self._held = holds

    def close(self, vm_host_end: np.ndarray) -> None:
        """Count the shutdowns at the run's end (the last edge): hosts holding VMs at the last interval's start
        and none at the end (`vm_host_end`: each VM's host then, -1 none)."""
        if self._held is not None:
            at_end = np.bincount(vm_host_end[vm_host_end >= 0], minlength=len(self._held)) > 0
            self.shutdowns += int((self._held & ~at_end).sum())
            self._held = None


@dataclass
class RunRecord:
    """What one run keeps: per-VM totals (RunTotals), per-host totals (HostTotals), per-interval datacenter
    series and the event records; results.frames turns them into tables."""

    vm_host: np.ndarray  # (VMs,) host index, -1 = rejected
    totals: RunTotals
    host_totals: HostTotals
    vm_host_start: np.ndarray | None = None  # (VMs,) host at the first interval's start
    migrations: list | None = None  # MigrationRecord list when the run can migrate (empty: all went to a sink)
    vm_retired: np.ndarray | None = None  # (VMs,) removed as CloudSim removes idle VMs (cloudsim_compat)
    drains: list | None = None  # DrainRecord list when the scenario has maintenance
    overhead: "OverheadRecord | None" = None  # when the scenario's overhead model is on
    failover: Any = None  # engine.failover.Failover when some VMs migrate by VF failover
    failures: Any = None  # engine.failures.FailureManager when the scenario has failures
    # VMs that arrive and leave (workload lifecycles)
    lifecycle: Any = None  # engine.lifecycle.Lifecycles
    vms_live: np.ndarray | None = None  # (intervals,) VMs alive at some time in the interval
    vms_queued: np.ndarray | None = None  # (intervals,) VMs waiting at some time in the interval


@dataclass
class OverheadRecord:
    """The overhead model's output a run keeps: the datacenter's exit-driven overhead by reason per interval
    (intervals x reason labels, MIPS) and each VM's network I/O path. (Per host, the overhead and backend of the
    VMs on it go with the host rows, HostRows.)"""

    reasons: list[str]  # the exit-reason columns of IntervalOverhead.exits_per_s
    reason_mips: np.ndarray
    cfg_net_path: list[str] = field(default_factory=list)  # I/O path of each VM (at its initial host)


def empty_series(n_int: int, n_vm: int, n_reasons: int, n_reason_labels: int) -> IntervalOverhead:
    """IntervalOverhead arrays with a leading intervals axis, float32 per VM: a window of a run's per-VM rows."""
    arrays = {}
    for f in fields(IntervalOverhead):
        if f.name in ("components_mips", "io_demand", "io_served"):
            keys = COMPONENTS if f.name == "components_mips" else DEVICE_CLASSES
            arrays[f.name] = {c: np.zeros((n_int, n_vm), np.float32) for c in keys}
        elif f.name == "exits_per_s":
            arrays[f.name] = np.zeros((n_int, n_vm, n_reasons), np.float32)
        elif f.name == "reason_mips":
            arrays[f.name] = np.zeros((n_int, n_reason_labels))
        else:
            arrays[f.name] = np.zeros((n_int, n_vm), np.float32)
    return IntervalOverhead(**arrays)


def put_series(series: IntervalOverhead, k: int, ov: IntervalOverhead, vm_idx: np.ndarray | None = None) -> None:
    """Store interval `ov` (of the VMs in vm_idx, or all) as row k of `series` (see empty_series)."""
    pick = (lambda a: a) if vm_idx is None else (lambda a: a[vm_idx])  # noqa: E731
    for f in fields(IntervalOverhead):
        value = getattr(ov, f.name)
        if isinstance(value, dict):
            for c, arr in value.items():
                getattr(series, f.name)[c][k] = pick(arr)
        else:
            getattr(series, f.name)[k] = value if f.name == "reason_mips" else pick(value)


def as_float32(ov: IntervalOverhead) -> IntervalOverhead:
    """The per-VM arrays of `ov` as float32 (what a run records; reason_mips, summed over VMs, stays float64)."""
    out = {}
    for f in fields(IntervalOverhead):
        v = getattr(ov, f.name)
        if isinstance(v, dict):
            out[f.name] = {c: np.asarray(a, np.float32) for c, a in v.items()}
        else:
            out[f.name] = v if f.name == "reason_mips" else np.asarray(v, np.float32)
    return IntervalOverhead(**out)
