"""How fast the CSV trace readers read, and how much memory they hold, on generated traces in each published CSV
layout (bitbrains: a folder of per-VM files; azure: vmtable + vm_cpu_readings; alibaba2018: container_meta +
container_usage; google2019: instance_events + instance_usage), each read in a fresh process as a run reads it:
every VM, put on the run grid of the trace's span at 300 s (bitbrains: its reader's Series, every sample kept).

    python benchmarks/bench_readers.py [--mb 2000] [--layouts bitbrains azure alibaba2018 google2019] [--keep DIR
                                       [--reuse]]

Targets (issue 13): at least 50 MB/s and at most 1.5 GB peak RSS at 2 GB of CSV per layout. Prints one row per
layout: MB of CSV (10^6 bytes), VMs, seconds, MB/s, the reader's CPU seconds and MB per CPU second, and peak RSS
MB (the reading process's own peak resident set, VmHWM; Linux).
The traces are written once per layout from one generated block repeated with new VM names, so writing is fast
and the content is realistic in size and shape, not in values.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

READ = """
import sys
from pathlib import Path
from types import SimpleNamespace
from consolidate.scenario.model import TraceSource
from consolidate.workload import alibaba, azure, bitbrains, google
from consolidate.workload.timeline import to_grid
kind, path, days = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
# the run grid a scenario on the whole trace would have: its span at 300 s
grid = SimpleNamespace(duration_s=days * 86400, interval_s=300.0, n_intervals=int(days * 86400 // 300))
if kind == "bitbrains":
    n = len([bitbrains.read_file(f) for f in bitbrains.files_of(path)])
else:
    mod, src = {"azure": (azure, TraceSource(azure=str(path), start=0.0)),
                "alibaba2018": (alibaba, TraceSource(alibaba2018=str(path), start=0.0)),
                "google2019": (google, TraceSource(google2019=str(path), start=0.0))}[kind]
    series, _ = mod.read_series(path, src, None)
    n = len(to_grid(series, grid, src, str(path)).names)
# the peak of this process's own memory (VmHWM: reset by exec, unlike ru_maxrss, which a forked child inherits
# from the parent that generated the trace)
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(n, hwm)
"""

STEP_S = 300
rng = np.random.default_rng(0)


def _bitbrains(folder: Path, target: int) -> None:
    head = ("Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\t"
            "Memory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\t"
            "Disk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n")
    t = 1376314846 + np.arange(8640) * STEP_S + rng.integers(-5, 6, 8640)  # a month, with the real jitter
    u = rng.uniform(0, 100, 8640)
    body = "".join(f"{a};\t2;\t5199.99;\t{b * 52:.6f};\t{b:.6f};\t4194304.0;\t{b * 4000:.4f};\t0.0;\t1.46;\t0.0;\t0.0\n"
                   for a, b in zip(t, u))
    data = (head + body).encode()
    for k in range(max(1, target // len(data))):
        (folder / f"{k}.csv").write_bytes(data)


def _blocks(path: Path, block: bytes, target: int, token: bytes = b"@@", head: bytes = b"") -> int:
    """Write `head`, then `block` repeatedly with `token` replaced by the block number until `target` bytes;
    returns the blocks."""
    n = max(1, target // len(block))
    with path.open("wb") as f:
        f.write(head)
        for k in range(n):
            f.write(block.replace(token, str(k).encode()))
    return n


def _azure(folder: Path, target: int, vms_per_block: int = 200) -> None:
    (folder / "vm_cpu_readings").mkdir()
    (folder / "vmtable").mkdir()
    t = np.arange(0, 8640) * STEP_S  # 30 days
    lines = []
    for v in range(vms_per_block):
        u = rng.uniform(0, 100, len(t))
        lines.append("".join(f"{a},@@-vm{v:04d}-0123456789abcdef0123456789abcdef,{b * .5:.6f},{min(b * 1.5, 100):.6f},"
                             f"{b:.6f}\n" for a, b in zip(t, u)))
    blocks = _blocks(folder / "vm_cpu_readings" / "vm_cpu_readings-file-1-of-1.csv", "".join(lines).encode(), target)
    row = "".join(f"@@-vm{v:04d}-0123456789abcdef0123456789abcdef,sub,dep,0,2591700,99.1,10.2,40.3,Interactive,2,3.5\n"
                  for v in range(vms_per_block)).encode()
    _blocks(folder / "vmtable" / "vmtable.csv", row, len(row) * blocks)


def _alibaba(folder: Path, target: int, per_block: int = 200) -> None:
    t = np.arange(0, 8 * 86400, 60)  # 8 days, 60 s
    lines = []
    for c in range(per_block):
        u = rng.uniform(0, 100, len(t))
        lines.append("".join(f"c_@@_{c},m_{c % 50},{a},{b:.0f},{b / 2:.0f},,,,,,\n" for a, b in zip(t, u)))
    blocks = _blocks(folder / "container_usage.csv", "".join(lines).encode(), target)
    row = "".join(f"c_@@_{c},m_{c % 50},0,app_{c % 7},started,400,400,3.13\n" for c in range(per_block)).encode()
    _blocks(folder / "container_meta.csv", row, len(row) * blocks)


USAGE_HEAD = ("start_time,end_time,collection_id,instance_index,machine_id,alloc_collection_id,alloc_instance_index,"
              "collection_type,average_usage.cpus,average_usage.memory,maximum_usage.cpus,maximum_usage.memory,"
              "random_sample_usage.cpus,assigned_memory,page_cache_memory,cycles_per_instruction,"
              "memory_accesses_per_instruction,sample_rate\n")


def _google(folder: Path, target: int, per_block: int = 200) -> None:
    """CSV as a flattening query exports it (header row, nested fields as a.b): 8 days of 300 s windows in µs."""
    t = np.arange(600, 600 + 8 * 86400, STEP_S) * 1_000_000
    lines = []
    for c in range(per_block):
        u = rng.uniform(0, 0.05, len(t))
        lines.append("".join(f"{a},{a + STEP_S * 1_000_000},@@{c:04d},{c % 10},{c % 97},0,-1,0,{b:.6f},0.0123,"
                             f"{b * 1.4:.6f},0.0131,{b * 1.1:.6f},0.0,0.0011,1.31,0.0042,0.94\n"
                             for a, b in zip(t, u)))
    blocks = _blocks(folder / "instance_usage-000000000000.csv", "".join(lines).encode(), target,
                     head=USAGE_HEAD.encode())
    ev = "".join(f"0,3,@@{c:04d},1,,0,200,0,{c % 10},{c % 97},-1,0.04,0.02\n" for c in range(per_block)).encode()
    _blocks(folder / "instance_events-000000000000.csv", ev, len(ev) * blocks,
            head=b"time,type,collection_id,scheduling_class,missing_type,collection_type,priority,"
                 b"alloc_collection_id,instance_index,machine_id,alloc_instance_index,resource_request.cpus,"
                 b"resource_request.memory\n")

WRITERS = {"bitbrains": _bitbrains, "azure": _azure, "alibaba2018": _alibaba, "google2019": _google}
DAYS = {"bitbrains": 30, "azure": 30, "alibaba2018": 8, "google2019": 8.0}  # each trace's span: the run grid


def measure(kind: str, folder: Path) -> tuple[float, int, float, float, float]:
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", READ, kind, str(folder), str(DAYS[kind])], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"reading {kind} failed (status {status})")
    vms, hwm_kib = map(int, proc.stdout.read().split())
    return size / 1e6, vms, wall, usage.ru_utime + usage.ru_stime, hwm_kib / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2000, help="MB (10^6 bytes) of CSV per layout")
    ap.add_argument("--layouts", nargs="+", default=list(WRITERS), choices=list(WRITERS))
    ap.add_argument("--keep", type=Path, help="write the traces here and keep them (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="with --keep: read the traces already there instead of "
                    "writing them again")
    a = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    # CPU s: the reader's own CPU time; on a loaded machine wall time waits for a core, MB per CPU s does not
    print("layout       MB      VMs     s      MB/s   CPU s  MB/CPU s  peak RSS MB")
    with tempfile.TemporaryDirectory() as tmp:
        root = a.keep or Path(tmp)
        for kind in a.layouts:
            folder = root / kind
            if not (a.reuse and folder.is_dir() and any(folder.iterdir())):
                folder.mkdir(parents=True, exist_ok=True)
                WRITERS[kind](folder, int(a.mb * 1e6))
            mb, vms, wall, cpu, rss = measure(kind, folder)
            print(f"{kind:<12} {mb:7.0f} {vms:7d} {wall:6.1f} {mb / wall:8.1f} {cpu:6.1f} {mb / cpu:8.1f} {rss:10.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
