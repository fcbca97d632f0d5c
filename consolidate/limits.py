"""How much memory this process may use, and what a run of a given size needs: checked before allocating, so
an oversized scenario is a one-line refusal instead of a machine swapping to death.

The per-cell figures are peak resident memory measured on runs of 2,000 to 8,000 VMs over 288 intervals
(whole run and report written, CSV included; AMD EPYC, Python 3.11): about 90 to 165 bytes per VM-interval
without the overhead model and 270 with it; doubled here for headroom (pandas copies while building frames).
"""
from __future__ import annotations

import os
import resource
from pathlib import Path

BYTES_PER_VM_INTERVAL = 350
BYTES_PER_VM_INTERVAL_OVERHEAD = 600
BYTES_PER_HOST_INTERVAL = 250
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
    return BASE_BYTES + copies * n_intervals * (n_vms * per_vm + n_hosts * BYTES_PER_HOST_INTERVAL)
