"""Memory and CPU of the workload grid alone (issue 15 item 2): build a generated population's workload (the
populations of `consolidate generate`, as benchmarks/bench_scale.py runs them) and read it back interval by
interval as a run does, each size in a fresh process.

    python benchmarks/bench_grid.py [--vms 10000 100000] [--days 1 7] [--hold]

Prints, per size: the grid's values, whether it was spooled, the peak resident memory (VmHWM) before and after
building, the memory still held once built, and the CPU seconds to build it and to read every row. `--hold`
keeps every grid in memory (grid.HOLD_VALUES raised), to compare; run from a checkout before streaming inputs
(PYTHONPATH=that checkout), it measures the builder that held every grid whole.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
from consolidate.sweep.generate import generate
from consolidate.validation import load_scenario
from consolidate.workload.build import build_workload

def status():
    return {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open("/proc/self/status")
            if l.startswith(("VmHWM", "VmRSS"))}

vms, days, hold, spool = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
if hold:
    from consolidate.workload import grid
    grid.HOLD_VALUES = 10**15
sc = load_scenario(generate(vms, max(1, vms // 10), {"web": 0.5, "database": 0.2, "batch": 0.3}, 1, days * 86400))
before = status()
t = time.process_time()
try:
    wl = build_workload(sc, spool)
except TypeError:  # a checkout before streaming inputs (to compare): its builder holds every grid
    wl = build_workload(sc)
built_s = time.process_time() - t
after = status()
t = time.process_time()
total = 0.0
for k in range(sc.n_intervals):
    total += float(wl.cpu_util[k][0])
read_s = time.process_time() - t
print(json.dumps({"values": sc.n_intervals * vms, "spooled": getattr(wl, "spooled", False), "base_mb": before["VmHWM"],
                  "peak_mb": after["VmHWM"], "held_mb": after["VmRSS"] - before["VmRSS"], "build_cpu_s": built_s,
                  "read_cpu_s": read_s}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--days", type=float, nargs="+", default=[1.0, 7.0])
    ap.add_argument("--hold", action="store_true", help="keep every grid in memory, to compare")
    args = ap.parse_args()
    if not os.path.exists("/proc/self/status"):
        raise SystemExit("bench_grid reads /proc/self/status (Linux)")
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}; "
          f"grid {'held' if args.hold else 'as the run keeps it'}")
    print(f"{'VMs':>9} {'days':>5} {'values':>13} {'spooled':>8} {'base MB':>8} {'peak MB':>8} {'held MB':>8} "
          f"{'build CPU s':>12} {'read CPU s':>11}")
    with tempfile.TemporaryDirectory() as spool:
        for n in args.vms:
            for d in args.days:
                out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(d), "1" if args.hold else "0", spool],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                print(f"{n:>9,} {d:>5g} {r['values']:>13,} {str(r['spooled']):>8} {r['base_mb']:>8.0f} "
                      f"{r['peak_mb']:>8.0f} {r['held_mb']:>8.0f} {r['build_cpu_s']:>12.1f} {r['read_cpu_s']:>11.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
