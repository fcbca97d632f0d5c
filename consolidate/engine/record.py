"""What a run records, interval by interval: the raw arrays results.frames turns into tables."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from consolidate.costmodel.interval import COMPONENTS, IntervalOverhead
from consolidate.hardware.assignment import DEVICE_CLASSES


@dataclass
class RunRecord:
    """Raw per-interval arrays of one run, time-major; results.frames turns them into tables."""

    vm_host: np.ndarray  # (VMs,) host index, -1 = rejected
    cpu_demand_mips: np.ndarray  # (intervals, VMs) float32
    cpu_served_mips: np.ndarray  # (intervals, VMs) float32
    host_demand_mips: np.ndarray  # (intervals, hosts)
    host_served_mips: np.ndarray  # (intervals, hosts)
    host_on: np.ndarray  # (intervals, hosts) bool
    host_power_w: np.ndarray  # (intervals, hosts)
    host_vms: np.ndarray  # (intervals, hosts) int
    vm_host_series: np.ndarray | None = None  # (intervals, VMs) host at each interval's start
    migration_loss_mips: np.ndarray | None = None  # (intervals, VMs) demand lost to migration
    host_on_fraction: np.ndarray | None = None  # (intervals, hosts)
    host_overloaded: np.ndarray | None = None  # (intervals, hosts) share of the interval over capacity
    migrations: list | None = None  # MigrationRecord list when consolidation is on
    vm_retired: np.ndarray | None = None  # (VMs,) removed as CloudSim removes idle VMs (cloudsim_compat)
    drains: list | None = None  # DrainRecord list when the scenario has maintenance
    overhead: "OverheadRecord | None" = None  # when the scenario's overhead model is on
    failover: Any = None  # engine.failover.Failover when some VMs migrate by VF failover
    failures: Any = None  # engine.failures.FailureManager when the scenario has failures
    # VMs that arrive and leave (workload lifecycles)
    lifecycle: Any = None  # engine.lifecycle.Lifecycles
    queued_mips: np.ndarray | None = None  # (intervals, VMs) demand spent waiting in the queue
    vms_live: np.ndarray | None = None  # (intervals,) VMs alive at some time in the interval
    vms_queued: np.ndarray | None = None  # (intervals,) VMs waiting at some time in the interval


@dataclass
class OverheadRecord:
    """The overhead model's output over a run: `series` holds every IntervalOverhead array with a leading
    intervals axis (float32 per VM), `reasons` names the exit-reason columns of `series.exits_per_s`."""

    reasons: list[str]
    series: IntervalOverhead
    cfg_net_path: list[str] = field(default_factory=list)  # I/O path of each VM (at its initial host)

    @classmethod
    def empty(cls, n_int: int, n_vm: int, reasons: list[str], n_reason_labels: int) -> "OverheadRecord":
        arrays = {}
        for f in fields(IntervalOverhead):
            if f.name in ("components_mips", "io_demand", "io_served"):
                keys = COMPONENTS if f.name == "components_mips" else DEVICE_CLASSES
                arrays[f.name] = {c: np.zeros((n_int, n_vm), np.float32) for c in keys}
            elif f.name == "exits_per_s":
                arrays[f.name] = np.zeros((n_int, n_vm, len(reasons)), np.float32)
            elif f.name == "reason_mips":
                arrays[f.name] = np.zeros((n_int, n_reason_labels))
            else:
                arrays[f.name] = np.zeros((n_int, n_vm), np.float32)
        return cls(reasons=reasons, series=IntervalOverhead(**arrays))

    def put(self, k: int, ov: IntervalOverhead) -> None:
        """Store interval k."""
        for f in fields(IntervalOverhead):
            value = getattr(ov, f.name)
            if isinstance(value, dict):
                for c, arr in value.items():
                    getattr(self.series, f.name)[c][k] = arr
            else:
                getattr(self.series, f.name)[k] = value
