"""The README's failures table from the failures-ha sweep:

    consolidate sweep scenarios/failures-ha.yaml --workers 2
    python scripts/failures_table.py reports/failures-ha-sweep

One row per host count and appliance migration policy over the sweep's seeds: failures and VMs stopped (mean),
each tier's availability in its worst seed, the most VMs that waited for a host, VM downtime, hosts on and energy
(means). Runs whose VMs did not fit are counted, not averaged in.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def table(sweep_dir: Path) -> str:
    t = pd.read_parquet(sweep_dir / "sweep.parquet")
    ok = t[t.status == "ok"]
    rows = ["| hosts | appliances | runs placed | host failures | VMs stopped | web availability % (worst seed) | "
            "appliance availability % (worst seed) | most waiting | VM downtime h | hosts on | energy MWh |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (n, policy), g in t.groupby(["hosts.0.count", "vms.1.migration_policy"]):
        o = ok[(ok["hosts.0.count"] == n) & (ok["vms.1.migration_policy"] == policy)]
        if o.empty:
            rows.append(f"| {n} | {policy} | 0 of {len(g)} | | | | | | | | |")
            continue
        rows.append(f"| {n} | {policy} | {len(o)} of {len(g)} | {o.host_failures.mean():.1f} | "
                    f"{o.vm_failures.mean():.0f} | {o.availability_min_web.min() * 100:.4f} | "
                    f"{o.availability_min_appliances.min() * 100:.4f} | {o.vms_waiting_for_restart_max.max():.0f} | "
                    f"{o.vm_failure_downtime_s_total.mean() / 3600:.1f} | {o.hosts_active_mean.mean():.1f} | "
                    f"{o.energy_kwh.mean() / 1000:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/failures-ha-sweep")))
