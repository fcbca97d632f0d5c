"""Benchmark a scenario, by default the embedded one (one PlanetLab day, 1,052 VMs x 288 intervals on 800 hosts).

    python benchmarks/bench_default.py [--repeat N] [--scenario FILE] [--policy POLICY]
    python benchmarks/bench_default.py --scenario scenarios/planetlab-consolidation.yaml --repeat 1

Prints, for the in-process simulation (load, place, account, build frames; best of N) its wall time and
VM-intervals per second, and for the whole command `consolidate run` in a fresh process (start to report
written) its wall time and peak resident memory.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--repeat", type=int, default=5, help="in-process runs; the best is reported")
    ap.add_argument("--scenario", default=None, help="scenario file (default: the embedded default)")
    ap.add_argument("--policy", default=None, help="override the consolidation policy")
    args = ap.parse_args()

    import consolidate

    consolidate.run(args.scenario, policy=args.policy)  # warm caches (built-in trace, imports)
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        res = consolidate.run(args.scenario, policy=args.policy)
        best = min(best, time.perf_counter() - t0)
    s = res.summary.iloc[0]
    vm_intervals = int(s.vms) * int(round(s.duration_s / s.interval_s))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "consolidate", "run", "--quiet", "--out", os.path.join(tmp, "run")]
        cmd += [args.scenario] if args.scenario else []
        cmd += ["--policy", args.policy] if args.policy else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        e2e = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux reports KiB

    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}")
    print(f"scenario: {s.scenario}, {s.vms} VMs x {vm_intervals // int(s.vms)} intervals on {s.hosts} hosts")
    print(f"simulation (in process, best of {args.repeat}): {best:.3f} s, "
          f"{vm_intervals / best:,.0f} VM-intervals/s")
    print(f"consolidate run (fresh process, start to report written): {e2e:.2f} s, peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
