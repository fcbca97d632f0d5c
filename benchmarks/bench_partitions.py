"""Wall time of a partitioned run in one process and on a local pool, each in a fresh process, and whether the
summaries are the same bits (they must be: docs/partitions.md).

    python benchmarks/bench_partitions.py [--scenario scenarios/partitioned.yaml] [--workers 1 2]

Prints one line per worker count: wall time end to end (scenario load, the partitions, the merge, writing the
frames as Parquet, no report), the CPU time of the run's processes (user + system, workers included), the
machine's load average before it (other jobs share the cores: a wall time is only comparable on an idle
machine), and whether its summary equals the first one's (run_id and wall_s aside).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "partitioned.yaml"))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    first = None
    print(f"{Path(args.scenario).name} on {os.cpu_count()} CPUs")
    for n in args.workers:
        load = os.getloadavg()[0]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "consolidate", "run", args.scenario, "--workers", str(n),
                                   "--no-plots", "--no-csv", "--format", "json", "--out", f"{tmp}/out"],
                                  capture_output=True, text=True, cwd=REPO)
            wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        summary = json.loads(done.stdout)
        for k in ("run_id", "wall_s"):
            summary.pop(k)
        first = first or summary
        print(f"  --workers {n}: {wall:.1f} s end to end, {cpu:.1f} s CPU, load average {load:.1f} before; "
              f"{summary['vms']:,} VMs on {summary['hosts']:,} hosts; summary "
              f"{'identical' if summary == first else 'DIFFERENT'} to the first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
