"""Every policy of the PlanetLab study against CloudSim 3.0.3's run of it: wall time from process start to frames
and summary written, and peak memory, one fresh `consolidate run` process per policy.

    python benchmarks/bench_policies.py [--repeat 3] [--day 20110303] [--full]

Each run is `python -m consolidate run scenarios/planetlab-consolidation.yaml --policy P --no-plots --no-csv`
(Parquet frames, summary, resolved scenario, run.json; `--full` times the default command with CSV and the HTML
report instead). The median of `--repeat` runs is reported with the child's CPU time and peak resident memory
(from wait4, so each figure is that one process's).

CloudSim 3.0.3's figures (measured on this 2-core machine class, median of 5 quiet runs, its event log off):
THR-MMT-0.8 18.5 s wall, the other policies 15-25 s; about 2 GB of memory. The targets are a tenth of its wall
time and a quarter of its memory. For policies other than THR the comparison takes 15 s, the fastest of them,
so the margin shown is the smallest it can be.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STUDY = REPO / "scenarios" / "planetlab-consolidation.yaml"
POLICIES = REPO / "scenarios" / "sweeps" / "planetlab-policies.yaml"
CLOUDSIM_S = {"thr-mmt-0.8": 18.5}  # its measured run; every other policy: CLOUDSIM_OTHERS_S
CLOUDSIM_OTHERS_S = 15.0  # the fast end of its 15-25 s
CLOUDSIM_MB = 2048.0
SPEEDUP_TARGET = 10.0
MEMORY_TARGET_MB = CLOUDSIM_MB / 4


def study_policies() -> list[str]:
    """The study's policies, as the policy sweep lists them (one list for the table and the benchmark)."""
    return yaml.safe_load(POLICIES.read_text())["sweep"]["grid"]["consolidation.policy"]


def run_once(policy: str, out: Path, full: bool, day: str | None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one fresh `consolidate run` process."""
    cmd = [sys.executable, "-m", "consolidate", "run", str(STUDY), "--policy", policy, "--quiet", "--out", str(out)]
    if not full:
        cmd += ["--no-plots", "--no-csv"]
    env = dict(os.environ)
    if day is not None:  # another packed day: a scenario that extends the study, in the temporary folder
        other = out.parent / f"study-{day}.yaml"
        other.write_text(f"extends: {STUDY}\nset: {{vms.0.trace.planetlab: 'builtin:{day}'}}\n")
        cmd[4] = str(other)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit code {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per policy; the median is reported")
    ap.add_argument("--day", default=None, help="another packed PlanetLab day (e.g. 20110322); default the study's")
    ap.add_argument("--full", action="store_true", help="time the default command (CSV and HTML report) instead")
    ap.add_argument("--policy", action="append", help="only these policies (repeatable)")
    args = ap.parse_args()

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f}")
    what = "CSV + HTML report" if args.full else "--no-plots --no-csv"
    print(f"consolidate run {STUDY.relative_to(REPO)} --policy P ({what}), median of {args.repeat}\n")
    print("| policy | wall s | CPU s | peak MiB | CloudSim s | speed-up | 10x target s | target |")
    print("|---|---|---|---|---|---|---|---|")
    worst = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for policy in args.policy or study_policies():
            runs = [run_once(policy, Path(tmp) / f"{policy}-{i}", args.full, args.day) for i in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            peak = max(r[2] for r in runs)
            ref = CLOUDSIM_S.get(policy, CLOUDSIM_OTHERS_S)
            speedup = ref / wall
            worst = min(worst, speedup)
            met = "met" if speedup >= SPEEDUP_TARGET else f"missed by {wall / (ref / SPEEDUP_TARGET):.2f}x"
            mem = "" if peak <= MEMORY_TARGET_MB else f", memory over {MEMORY_TARGET_MB:.0f} MiB"
            print(f"| {policy} | {wall:.2f} | {cpu:.2f} | {peak:.0f} | {ref:g} | {speedup:.1f}x | "
                  f"{ref / SPEEDUP_TARGET:.2f} | {met}{mem} |", flush=True)
    print(f"\nslowest speed-up {worst:.1f}x (target {SPEEDUP_TARGET:g}x); memory target {MEMORY_TARGET_MB:.0f} MiB")


if __name__ == "__main__":
    main()
