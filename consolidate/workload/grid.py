"""The workload's (intervals, VMs) grids: CPU utilisation and the trace's optional columns, float32.

A small grid is held in memory as a plain ndarray, exactly as it always was. A big one is written once, while
the groups are read, to a temporary spool file, and the run reads it a window of consecutive intervals at a
time as its clock advances (`SpooledGrid`), so a run's memory holds only that window, never the whole grid.

The spool is a file with no name (`tempfile.TemporaryFile`: on Linux it is unlinked before anything is
written), in the run's spool folder: the disk it takes is freed when the grid is closed, when it is garbage-
collected, and by the kernel when the process dies, even by `kill -9`; nothing is ever left behind. It takes
4 bytes per VM-interval per column (the utilisation and each optional column a trace gives).

Groups are handed over a block of VMs at a time (`add`), never as a whole (VMs, intervals) group: each block is
written as its own time-major segment, so a window of intervals is one read per block. Per-VM reductions the
run needs before it starts (each VM's peak: placement's peak_demand basis, memory_basis: used) are taken from
the blocks as they are written.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

# a grid of at most this many float32 values (utilisation and optional columns together, 8 MB) is held in
# memory; a bigger one is spooled. The same size as a held vm_intervals frame's rows (results/frames.py).
HOLD_VALUES = 2_000_000
# a group is made and handed over this many bytes of float64 (VMs x intervals) at a time: a synthetic group's
# draws, a trace group's life window and float32 conversion
BLOCK_BYTES = 8 * 2**20
# a spooled grid keeps about this many bytes of consecutive intervals (all VMs) in memory
WINDOW_BYTES = 8 * 2**20


def block_vms(n_intervals: int) -> int:
    """VMs per block for a grid of `n_intervals` intervals (at least 1)."""
    return max(1, BLOCK_BYTES // (8 * max(n_intervals, 1)))


@dataclass(frozen=True)
class Drawn:
    """A group's (VMs, intervals) values made a block of VMs at a time, never whole: `make(first, count)` returns
    VMs first..first+count-1 as a (count, intervals) array. Blocks are made once each, in VM order (a seeded
    generator draws them in turn), when the workload builder asks for them."""

    shape: tuple[int, int]
    make: Callable[[int, int], np.ndarray]

    def __len__(self) -> int:
        return self.shape[0]


def vm_blocks(values: np.ndarray | Drawn, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first VM, (VMs, intervals) block) of `values`, `size` VMs at a time, in order."""
    n = len(values)
    for a in range(0, n, size):
        b = min(n, a + size)
        yield a, (values.make(a, b - a) if isinstance(values, Drawn) else values[a:b])


def peak(values: np.ndarray | "SpooledGrid") -> np.ndarray:
    """Each VM's largest value over the run, ignoring NaN (NaN where a VM has no value), float32 (VMs,)."""
    if isinstance(values, SpooledGrid):
        return values.peak
    if values.shape[0] == 0:
        return np.full(values.shape[1], np.nan, np.float32)
    return np.fmax.reduce(values, axis=0)


def _block_peak(block: np.ndarray) -> np.ndarray:
    if block.shape[1] == 0:
        return np.full(block.shape[0], np.nan, np.float32)
    return np.fmax.reduce(block, axis=1)


class _Spool:
    """The temporary file every spooled column of one workload shares (segments appended, read by offset)."""

    def __init__(self, folder: Path | None):
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        # unnamed (unlinked at once): the kernel frees it with the last descriptor, whatever ends the process
        self.file = tempfile.TemporaryFile(prefix=".consolidate-grid-", dir=folder, buffering=0)
        self.size = 0  # bytes written

    def append(self, a: np.ndarray) -> int:
        """Write `a` (C order) at the end; returns its offset (bytes)."""
        at = self.size
        self.file.seek(at)
        self.file.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        self.size += a.nbytes
        return at

    def read_into(self, out: np.ndarray, offset: int) -> None:
        self.file.seek(offset)
        view = memoryview(out).cast("B")
        got = 0
        while got < len(view):  # a raw read may return less than asked
            n = self.file.readinto(view[got:])
            if not n:
                raise OSError(f"workload spool {self.file.name}: short read at byte {offset + got}")
            got += n

    def close(self) -> None:
        self.file.close()

    @property
    def closed(self) -> bool:
        return self.file.closed


@dataclass(frozen=True)
class _Segment:
    first: int  # first VM
    count: int  # VMs
    offset: int  # bytes into the spool; (intervals, count) float32, time-major


class SpooledGrid:
    """An (intervals, VMs) float32 grid on a spool file, read a window of intervals at a time.

    Indexing as the engine reads an ndarray grid: `g[k]` is interval k's row (VMs,), read-only; `g[k, vm]` a
    value or values of it; `g[k0:k1]` a copy of those rows. A window of about WINDOW_BYTES of consecutive
    intervals is kept: a run reads intervals in order, so each is read from the file about once. `peak` is each
    VM's largest value (as `peak()`), NaN where a VM has none (no such column in its trace).
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, spool: _Spool, n_intervals: int, n_vms: int, segments: list[_Segment], peak_: np.ndarray):
        self._spool, self._segments = spool, segments
        self.shape = (n_intervals, n_vms)
        self.peak = peak_
        self._rows = max(2, WINDOW_BYTES // max(4 * n_vms, 1))
        self._first, self._window = 0, np.empty((0, n_vms), np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"SpooledGrid(intervals={self.shape[0]}, vms={self.shape[1]}, window={self._rows} intervals)"

    def __reduce__(self):
        raise TypeError("a spooled workload grid lives in its process's temporary file and cannot be pickled")

    @property
    def closed(self) -> bool:
        return self._spool.closed

    def rows(self, k0: int, k1: int) -> np.ndarray:
        """Intervals k0..k1-1 of every VM, a new (k1 - k0, VMs) float32 array (NaN where a VM has no value)."""
        k0, k1 = max(k0, 0), min(k1, self.shape[0])
        out = np.full((max(k1 - k0, 0), self.shape[1]), np.nan, np.float32)
        if k1 <= k0:
            return out
        for s in self._segments:
            buf = np.empty((k1 - k0, s.count), np.float32)
            self._spool.read_into(buf, s.offset + 4 * k0 * s.count)
            out[:, s.first:s.first + s.count] = buf
        return out

    def _row(self, k: int) -> np.ndarray:
        n = self.shape[0]
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"interval {k} is outside the grid's {n} intervals")
        if not self._first <= k < self._first + len(self._window):
            # from the interval before: the engine reads interval k + 1 beside k (CloudSim's look ahead)
            self._first = max(0, k - 1)
            # a new array, never refilled in place: a row handed out earlier stays what it was
            self._window = self.rows(self._first, self._first + self._rows)
            self._window.flags.writeable = False
        return self._window[k - self._first]

    def __getitem__(self, key):
        if isinstance(key, slice):
            k0, k1, step = key.indices(self.shape[0])
            if step != 1:
                raise TypeError("a spooled workload grid reads consecutive intervals only (step 1)")
            return self.rows(k0, k1)
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], (int, np.integer)):
            return self._row(int(key[0]))[key[1]]
        if isinstance(key, (int, np.integer)):
            return self._row(int(key))
        raise TypeError(f"a spooled workload grid is read by interval (g[k], g[k, vms], g[k0:k1]); got {key!r}")


class GridWriter:
    """Collects a workload's grids block by block (`add`), holding them while they are small and spooling them
    once they pass `hold` float32 values; `finish` returns the grids."""

    def __init__(self, n_intervals: int, spool_dir: Path | None = None, hold: int | None = None):
        self.n_intervals = n_intervals
        self.spool_dir = spool_dir
        self.hold = HOLD_VALUES if hold is None else hold
        self.n_vms = 0
        self._held: list[tuple[int, dict[str, np.ndarray]]] = []  # (first VM, {column: (VMs, intervals)})
        self._values = 0
        self._spool: _Spool | None = None
        self._segments: dict[str, list[_Segment]] = {}
        self._peaks: dict[str, list[tuple[int, np.ndarray]]] = {}

    @property
    def spooled(self) -> bool:
        return self._spool is not None

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """The next block of VMs: {column: (VMs, intervals) float32}; `cpu_util` is always there, the optional
        trace columns where the block's trace gives them (NaN elsewhere)."""
        first = self.n_vms
        self.n_vms += len(columns["cpu_util"])
        if self._spool is None:
            self._held.append((first, columns))
            self._values += sum(a.size for a in columns.values())
            if self._values > self.hold:
                self._spool = _Spool(self.spool_dir)
                held, self._held = self._held, []
                for f, cols in held:
                    self._write(f, cols)
            return
        self._write(first, columns)

    def _write(self, first: int, columns: dict[str, np.ndarray]) -> None:
        for col, a in columns.items():
            at = self._spool.append(a.T)
            self._segments.setdefault(col, []).append(_Segment(first, len(a), at))
            self._peaks.setdefault(col, []).append((first, _block_peak(a)))

    def finish(self) -> tuple[np.ndarray | SpooledGrid, dict[str, np.ndarray | SpooledGrid]]:
        """(cpu_util, {optional column: grid}), sorted by column name; ndarrays while held, else SpooledGrids."""
        n_int, n = self.n_intervals, self.n_vms
        names = sorted({c for _, cols in self._held for c in cols} | set(self._segments) | {"cpu_util"})
        out = {}
        for col in names:
            if self._spool is None:
                grid = np.zeros((n_int, n), np.float32) if col == "cpu_util" else np.full((n_int, n), np.nan,
                                                                                           np.float32)
                for first, cols in self._held:  # time-major, block by block (no stacked copy)
                    if col in cols:
                        grid[:, first:first + len(cols[col])] = cols[col].T
            else:
                pk = np.full(n, np.nan, np.float32)
                for first, p in self._peaks.get(col, []):
                    pk[first:first + len(p)] = p
                grid = SpooledGrid(self._spool, n_int, n, self._segments.get(col, []), pk)
            out[col] = grid
        self._held = []
        util = out.pop("cpu_util")
        return util, out

    def close(self) -> None:
        """Give the spool back (a build that failed): its disk is freed."""
        self._held = []
        if self._spool is not None:
            self._spool.close()


def close(grid: np.ndarray | SpooledGrid) -> None:
    """Free a spooled grid's file (all the columns of its workload share it); nothing for a held grid."""
    if isinstance(grid, SpooledGrid):
        grid._spool.close()
