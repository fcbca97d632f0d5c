"""How much memory this process may use, and what a run of a given size needs: checked before allocating, so
an oversized scenario is a one-line refusal instead of a machine swapping to death.

A run keeps per-VM rows only as running totals (engine/record.py), streams big vm_intervals, host_intervals and
migrations frames to disk, and spools a big workload grid (workload/grid.py), so nothing it holds grows with
VM-intervals or host-intervals: memory goes with the VMs, the hosts (up to the held frames) and the intervals
(per-interval series), and the disk with VM-intervals (`spool_bytes`). What still does grow with VM-intervals
is a trace group's own array while its reader reads it (generated groups are made a block of VMs at a time).
Measured peak resident memory, THR-MMT-0.8 and the overhead model on, vm_intervals off (AMD EPYC, Python 3.11):
573 MB at 100,000 VMs / 10,000 hosts and 3,231 MB at 1,000,000 VMs / 100,000 hosts over 288 intervals; the
figures below keep about 1.3 times the latter (a 1,000,000-VM day is estimated at 4.1 GiB).
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

HELD_GRID_VALUES = 2_000_000  # workload/grid.py HOLD_VALUES: a bigger workload grid is spooled to disk
BYTES_PER_HELD_GRID_VALUE = 12  # a held grid: float32 utilisation and up to two optional trace columns
GRID_WINDOW_BYTES = 3 * 8 * 2**20  # a spooled grid's window of intervals (grid.WINDOW_BYTES), per column read
BYTES_PER_SPOOLED_VM_INTERVAL = 4  # disk: the spooled utilisation, float32 (each optional column 4 more)
BYTES_PER_READ_VM_INTERVAL = 16  # a trace group's own (VMs x intervals) float64 array while it is read, and more
BYTES_PER_INTERVAL = 1024  # per-interval series: the datacenter frame, overhead by reason, hosts on and power
BYTES_PER_HOST_INTERVAL = 250
HELD_HOST_ROWS = 2_000_000  # results/frames.py HOLD_HOST_INTERVAL_ROWS: above it, a window of them at a time
BYTES_PER_VM = 3072  # the VM table, per-VM totals and the overhead model's per-interval per-VM arrays
HELD_ROWS_BYTES = 512 * 2**20  # a vm_intervals frame small enough to be held (results/frames.py)
BASE_BYTES = 200 * 2**20  # the interpreter, numpy, pandas, pyarrow, simpy loaded
GIB = 2**30


def available_memory_bytes() -> int:
    """Memory this process can still take: the least of the machine's available memory, a cgroup's limit and
    the address-space rlimit (which tests set to bound a child)."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            limits.append(8 * GIB)  # unknown platform: a laptop's worth
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits)


def gib(n_bytes: float) -> str:
    """`n_bytes` as GiB for messages, e.g. '12.5 GiB'."""
    return f"{n_bytes / GIB:,.1f} GiB"


def run_bytes(n_vms: int, n_hosts: int, n_intervals: int, overhead: bool, copies: int = 1,
              read_vms: int = 0) -> int:
    """Estimated peak memory (bytes) of a run with these sizes; `copies` runs held at once (a maintenance
    baseline keeps the first run's results while the second runs); `read_vms` the VMs of the largest group read
    from a trace (its reader holds the group's values whole while it reads them; generated groups never are).
    The overhead model's per-VM arrays are per interval, so `overhead` no longer changes the figure."""
    grid = min(n_intervals * n_vms, HELD_GRID_VALUES) * BYTES_PER_HELD_GRID_VALUE + GRID_WINDOW_BYTES
    host_rows = min(n_intervals * n_hosts, HELD_HOST_ROWS)
    return BASE_BYTES + read_vms * n_intervals * BYTES_PER_READ_VM_INTERVAL + copies * (
        grid + host_rows * BYTES_PER_HOST_INTERVAL + n_vms * BYTES_PER_VM + n_intervals * BYTES_PER_INTERVAL
        + HELD_ROWS_BYTES)


def spool_bytes(n_vms: int, n_intervals: int) -> int:
    """Disk (bytes) a run's spooled workload grid takes at least: nothing while the grid is held."""
    values = n_vms * n_intervals
    return 0 if values <= HELD_GRID_VALUES else values * BYTES_PER_SPOOLED_VM_INTERVAL
