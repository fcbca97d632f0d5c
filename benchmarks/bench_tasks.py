"""How long a week of batch tasks takes to run: scenarios/surf-tasks.yaml (6,295 tasks of a SURF-style week in
OpenDC's format, arriving and leaving on 400 hosts) in a fresh process, and its reading alone in another.

    python benchmarks/bench_tasks.py [--tasks 6295] [--hosts 400] [--policy POLICY]

Target (issue 13 item 9): the SURF-style week on 400 hosts in seconds, not minutes. Prints the machine, then one
row: tasks, fragments, hosts, seconds to read the trace onto the grid (build_workload, process start to exit), seconds
of the whole `consolidate run --no-plots` (process start to exit, frames written), each with its CPU seconds (user +
system: what a busy machine does not inflate), the run's own wall_s (simulation and results), and the peak RSS of
each process. With --tasks other than 6,295 the week is generated anew by
tests/data/surf-week/make_fixture.py (same distributions, more or fewer tasks) into a temporary folder.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "surf-tasks.yaml"
WEEK = REPO / "tests" / "data" / "surf-week"

READ = """
import sys
from consolidate import api
from consolidate.workload.build import build_workload
print(len(build_workload(api.load_scenario(sys.argv[1])).vms))
"""


def _fixture():
    spec = importlib.util.spec_from_file_location("surf_week_fixture", WEEK / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _timed(cmd: list[str], log: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak RSS (MB) and stdout of a child process (its own rusage);
    exits if it fails."""
    t0 = time.perf_counter()
    with log.with_suffix(".out").open("w") as out, log.with_suffix(".err").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({status}): {log.with_suffix('.err').read_text().strip()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, log.with_suffix(".out").read_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=6295)
    ap.add_argument("--hosts", type=int, default=400)
    ap.add_argument("--policy", help="consolidation policy (default: the scenario's, none)")
    a = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trace = WEEK
        if a.tasks != 6295:
            trace = tmp / "week"
            _fixture().write(trace, a.tasks)
        sc = yaml.safe_load(SCENARIO.read_text())
        sc["vms"][0]["trace"]["opendc"] = str(trace)
        sc["hosts"][0]["count"] = a.hosts
        if a.policy:
            sc["consolidation"] = {"policy": a.policy}
        f = tmp / "surf-tasks.yaml"
        f.write_text(yaml.safe_dump(sc, sort_keys=False))
        frags = pq.ParquetFile(trace / "fragments.parquet").metadata.num_rows
        read_s, read_cpu, read_rss, out = _timed([sys.executable, "-c", READ, str(f)], tmp / "read")
        n = int(out.strip())
        run_s, run_cpu, run_rss, out = _timed([sys.executable, "-m", "consolidate", "run", str(f), "--out", str(tmp / "out"),
                                      "--no-plots", "--format", "json"], tmp / "run")
        summary = json.loads(out)
        summary = summary[0] if isinstance(summary, list) else summary
    print("tasks  fragments  hosts  read s (CPU s)  read RSS MB  run s (CPU s)  run wall_s  run RSS MB  "
          "hosts on mean/max  queued")
    print(f"{n:5d} {frags:10d} {a.hosts:6d} {read_s:7.1f} ({read_cpu:4.1f}) {read_rss:11.0f} {run_s:7.1f} ({run_cpu:5.1f}) "
          f"{summary['wall_s']:10.1f} {run_rss:11.0f} {summary['hosts_active_mean']:11.1f}/{summary['hosts_active_max']:<6d}"
          f"{summary['vms_queued']:6d}")


if __name__ == "__main__":
    main()
