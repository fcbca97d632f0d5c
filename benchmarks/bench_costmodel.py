"""Throughput of the virtualization cost model alone (rates -> exits, flushes, walks, I/O, overhead), in
VM-intervals per second on one core.

    python benchmarks/bench_costmodel.py [--vms 100000] [--repeat 5]

Two workloads: (1) 100,000 VMs x 1 interval, VMs spread over four configurations (two VM groups x two host
types of different CPU generations) with profile-driven rates; (2) the default PlanetLab day (1,052 VMs x
288 intervals) with the overhead model switched on, on its static placement. Target: 2 million
VM-intervals per second.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def bench_synthetic(n_vms: int, repeat: int) -> float:
    import consolidate
    from consolidate.costmodel.model import OverheadModel
    from consolidate.engine.state import HostTable

    sc = consolidate.load_scenario({
        "name": "bench", "duration_s": 300, "interval_s": 300, "overhead": {"enabled": True},
        "hosts": [{"type": "hp-proliant-ml110-g5", "count": n_vms // 20},
                  {"type": "ibm-x3550-xeon-x5670", "count": n_vms // 20}],
        "vm_types": [{"name": "s", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 512}],
        "vms": [{"name": "web", "count": n_vms // 2, "type": "s", "profile": "web",
                 "trace": {"synthetic": {"mean": 0.3, "amplitude": 0.2}}},
                {"name": "db", "count": n_vms - n_vms // 2, "type": "s", "profile": "database",
                 "trace": {"synthetic": {"mean": 0.5, "amplitude": 0.2}}}]})
    from consolidate.workload.build import build_workload

    wl = build_workload(sc)
    hosts = HostTable.from_scenario(sc)
    om = OverheadModel(sc, wl, hosts.types)
    vm_host = np.arange(n_vms) % len(hosts)  # round-robin: both CPU generations in use
    util = wl.cpu_util[0].astype(np.float64)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        om.at(0, util, vm_host, hosts.host_type, hosts.cores)
        best = min(best, time.perf_counter() - t0)
    return n_vms / best


def bench_planetlab(repeat: int) -> tuple[float, int]:
    import consolidate
    from consolidate.costmodel.model import OverheadModel
    from consolidate.engine.placement import initial_placement
    from consolidate.engine.state import HostTable
    from consolidate.scenario.loader import default_scenario_path
    from consolidate.workload.build import build_workload
    import yaml

    data = yaml.safe_load(default_scenario_path().read_text())
    data["overhead"] = {"enabled": True}
    sc = consolidate.load_scenario(data)
    wl = build_workload(sc)
    hosts = HostTable.from_scenario(sc)
    om = OverheadModel(sc, wl, hosts.types)
    vm_host = initial_placement(sc, wl, hosts, om)
    n = wl.cpu_util.shape[0] * wl.cpu_util.shape[1]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for k in range(wl.cpu_util.shape[0]):
            om.at(k, wl.cpu_util[k].astype(np.float64), vm_host, hosts.host_type, hosts.cores)
        best = min(best, time.perf_counter() - t0)
    return n / best, n


def main() -> None:
    ap = argparse.ArgumentParser(description="cost-model throughput")
    ap.add_argument("--vms", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    rate = bench_synthetic(args.vms, args.repeat)
    print(f"{args.vms:,} VMs x 1 interval: {rate:,.0f} VM-intervals/s (best of {args.repeat})")
    rate, n = bench_planetlab(max(1, args.repeat // 2))
    print(f"PlanetLab day, overhead on ({n:,} VM-intervals): {rate:,.0f} VM-intervals/s")


if __name__ == "__main__":
    main()
