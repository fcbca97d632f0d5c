"""How much memory this process may use, and what a run of a given size needs: checked before allocating, so
an oversized scenario is a one-line refusal instead of a machine swapping to death.

A run keeps per-VM rows only as running totals (engine/record.py) and streams a big vm_intervals to disk, so
what grows with VM-intervals is the workload's utilisation grid (4 bytes, float32) and, with VMs that arrive
and leave, two float64 grids more; host-intervals cost memory only while the host_intervals frame is held (at
most HELD_HOST_ROWS rows: a bigger one goes to disk as the run goes, engine/record.py). Measured peak resident
memory, overhead model on, vm_intervals off (AMD EPYC, Python 3.11): 214 MB at 10,000 VMs / 1,000 hosts and
818 MB at 100,000 VMs / 10,000 hosts over 288 intervals, about 145 MB of it the loaded libraries; the figures
below keep about twice that as headroom.
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

BYTES_PER_VM_INTERVAL = 24
BYTES_PER_VM_INTERVAL_OVERHEAD = 24
BYTES_PER_HOST_INTERVAL = 250
HELD_HOST_ROWS = 2_000_000  # results/frames.py HOLD_HOST_INTERVAL_ROWS: above it, a window of them at a time
BYTES_PER_VM = 2048  # the VM table, per-VM totals and the overhead model's per-VM state
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


def run_bytes(n_vms: int, n_hosts: int, n_intervals: int, overhead: bool, copies: int = 1) -> int:
    """Estimated peak memory (bytes) of a run with these sizes; `copies` runs held at once (a maintenance
    baseline keeps the first run's results while the second runs)."""
    per_vm = BYTES_PER_VM_INTERVAL_OVERHEAD if overhead else BYTES_PER_VM_INTERVAL
    host_rows = min(n_intervals * n_hosts, HELD_HOST_ROWS)
    return BASE_BYTES + copies * (n_intervals * n_vms * per_vm + host_rows * BYTES_PER_HOST_INTERVAL
                                  + n_vms * BYTES_PER_VM + HELD_ROWS_BYTES)
