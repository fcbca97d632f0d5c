"""How wall time and peak memory grow with the VM count, for generated populations (overhead model on,
one simulated day at 300 s, 10 VMs per host), each run as a fresh `consolidate run` process.

    python benchmarks/bench_scale.py [--sizes 1000 3000 10000 30000] [--plot benchmarks/scale.png]
                                     [--vm-intervals full|off|default] [--consolidation POLICY] [--days N]

`--vm-intervals` sets the scenario's `outputs.vm_intervals`: `full` (the default, every VM's rows: what the
README's figure measures), `off` (issue 15's target), or `default` (the run's own default: a 1,000-VM sample
above 10,000,000 VM-intervals, README "Outputs"). `--consolidation` turns a registered consolidation policy on
(e.g. thr-mmt-0.8, issue 15's target; default none, the README figure's setting); `--days` sets the simulated
duration (default 1).

Prints a table (VMs, hosts, wall s, peak RSS MB, VM-intervals/s) and draws it.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import yaml


def measure(vms: int, tmp: str, vm_intervals: str = "default", consolidation: str = "none",
            days: float = 1.0) -> tuple[float, float]:
    scen = os.path.join(tmp, f"s{vms}.yaml")
    subprocess.run([sys.executable, "-m", "consolidate", "generate", "--vms", str(vms), "--hosts", str(max(1, vms // 10)),
                    "--duration-s", str(days * 86400), "--out", scen], check=True, stdout=subprocess.DEVNULL)
    if vm_intervals != "default" or consolidation != "none":
        with open(scen) as f:
            doc = yaml.safe_load(f)
        if vm_intervals != "default":
            doc["outputs"] = {"vm_intervals": vm_intervals}
        if consolidation != "none":
            doc["consolidation"] = {"policy": consolidation}
        with open(scen, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "consolidate", "run", scen, "--quiet", "--no-csv",
                             "--out", os.path.join(tmp, f"o{vms}")], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"run of {vms} VMs failed (status {status})")
    return wall, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    ap.add_argument("--plot", default=None, help="write a PNG of the growth here")
    ap.add_argument("--vm-intervals", choices=["full", "off", "default"], default="full",
                    help="the scenario's outputs.vm_intervals")
    ap.add_argument("--consolidation", default="none", metavar="POLICY",
                    help="consolidation policy of the generated scenario, e.g. thr-mmt-0.8 (default: none)")
    ap.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}; "
          f"vm_intervals: {args.vm_intervals}; consolidation: {args.consolidation}; days: {args.days:g}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            wall, rss = measure(n, tmp, args.vm_intervals, args.consolidation, args.days)
            rows.append((n, max(1, n // 10), wall, rss))
            print(f"{n:>8,} VMs {max(1, n // 10):>7,} hosts  {wall:8.1f} s  {rss:8.0f} MB  "
                  f"{n * 288 * args.days / wall:>12,.0f} VM-intervals/s", flush=True)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        ax[0].loglog([r[0] for r in rows], [r[2] for r in rows], "o-")
        ax[0].set(xlabel="VMs", ylabel="wall time (s)", title=f"Wall time, {args.days:g} day(s) at 300 s")
        ax[1].loglog([r[0] for r in rows], [r[3] for r in rows], "o-")
        ax[1].set(xlabel="VMs", ylabel="peak RSS (MB)", title="Peak memory")
        for a in ax:
            a.grid(alpha=0.3, which="both")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
