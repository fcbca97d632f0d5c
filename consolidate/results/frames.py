"""Turn a run's raw arrays into the documented result frames.

Columns carry their units. Per-interval values hold for the whole interval [time_s, time_s + interval_s).
"""
from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd

from consolidate import rng
from consolidate.costmodel.tables import REASON_LABELS
from consolidate.costmodel.interval import COMPONENTS
from consolidate.engine.record import (HostRows, HostTotals, IntervalRows, PairwiseSum, RunRecord, empty_series,
                                       put_series)
from consolidate.engine.state import HostTable
from consolidate.hardware.assignment import IO_CLASSES
from consolidate.results.metrics import SUMMARY_METRICS, summary_frame
from consolidate.results.writer import ParquetSpool, parquet_pieces, parquet_shape, write_run_folder
from consolidate.scenario.model import BIG_RUN_VM_INTERVALS, Scenario
from consolidate.workload.build import Workload

SUMMARY_COLUMNS = tuple(m.name for m in SUMMARY_METRICS if m.feature == "always")  # in every run's summary


def _migrations_frame(records, duration_s: float) -> pd.DataFrame:
    """One row per migration; a migration still running at the end has end_s = NaN."""
    cols = ["vm", "source", "destination", "reason", "start_s", "end_s", "rounds", "bytes", "downtime_s", "path",
            "queued_s", "service_gap_s"]
    row = attrgetter(*cols)
    df = pd.DataFrame([row(r) for r in records], columns=cols)
    df["end_s"] = df["end_s"].where(np.isfinite(df["end_s"].astype(float)), np.nan)
    return df.astype({"vm": "int32", "source": "int32", "destination": "int32", "rounds": "int32"})


def _maintenance_frame(drains) -> pd.DataFrame:
    """One row per VM a drain had to move: whether it left (and when its migration ended) or why it stayed."""
    rows = []
    for d in drains:
        for v, rec in sorted(d.moved.items()):
            rows.append({"drain": d.index, "at_s": d.at_s, "vm": v, "host": rec.source, "outcome": "moved",
                         "reason": "", "end_s": rec.end_s if np.isfinite(rec.end_s) else np.nan})
        for v, why in sorted(d.stuck.items()):
            rows.append({"drain": d.index, "at_s": d.at_s, "vm": v, "host": -1, "outcome": "stuck", "reason": why,
                         "end_s": np.nan})
    cols = ["drain", "at_s", "vm", "host", "outcome", "reason", "end_s"]
    return pd.DataFrame(rows, columns=cols)


def _run_summary(sc: Scenario, run_id: str, version: str, n_h: int, n_vm: int, placed: np.ndarray) -> dict:
    """What ran: identity, configuration (duration_s, interval_s in s), and the VMs placed at the start."""
    return {
        "scenario": sc.name,
        "run_id": run_id,
        "seed": sc.seed,
        "scenario_sha256": scenario_sha256(sc),
        "consolidate_version": version,
        "duration_s": sc.duration_s,
        "interval_s": sc.interval_s,
        "hosts": n_h,
        "vms": n_vm,
        "vms_placed": int(placed.sum()),
        "vms_rejected": int((~placed).sum()),
    }


def _host_summary(ht: HostTotals, on_util_mean: float) -> dict:
    """Hosts on, energy (kWh), datacenter power (W) and the powered-on hosts' utilisation (0..1), from the run's
    host totals."""
    n_int = len(ht.active)
    return {
        "hosts_active_mean": float(ht.active.mean()) if n_int else 0.0,
        "hosts_active_max": int(ht.active.max()) if n_int else 0,
        "energy_kwh": ht.energy_kwh.value,
        "power_w_mean": float(ht.power_w.mean()) if n_int else 0.0,
        "power_w_max": float(ht.power_w.max()) if n_int else 0.0,
        "host_cpu_util_mean": on_util_mean,
    }


def _on_util_mean(pieces, n_on: int) -> float:
    """Mean cpu_util (0..1) over the `n_on` host-intervals with the host on, from host_intervals frames in
    order (the held frame, or a spooled one's row groups): rounded as numpy's mean of the whole on-hosts'
    array, which needs their count before the first value (PairwiseSum), hence a pass once the run is done."""
    total = PairwiseSum(n_on)
    for df in pieces:
        total.add(df["cpu_util"].to_numpy()[(df["state"] == "on").to_numpy()])
    return total.value / n_on if n_on else 0.0


def _cpu_summary(totals, dt_h: float) -> dict:
    """CPU asked for, served and not, in MIPS-h; `effective` is guest + overhead + backend."""
    demand_h = totals["effective"] * dt_h
    unserved_h = totals["unserved"] * dt_h
    return {
        "cpu_demand_mips_h": totals["guest"] * dt_h,
        "cpu_effective_mips_h": demand_h,
        "cpu_served_mips_h": totals["served"] * dt_h,
        "cpu_unserved_mips_h": unserved_h,
        "cpu_rejected_mips_h": totals["rejected_at_start"] * dt_h,
        "sla_unserved_fraction": unserved_h / demand_h if demand_h > 0 else 0.0,
    }


def _column_sums(pieces, columns: list[str], n_rows: int) -> dict[str, float]:
    """Sums of float64 `columns` over a frame of `n_rows` rows given in pieces (the held frame, or a spooled
    one's row groups), rounded as pandas sums the whole column (numpy's pairwise sum, NaN counted as 0)."""
    sums = {c: PairwiseSum(n_rows) for c in columns}
    for df in pieces:
        for c in columns:
            v = df[c].to_numpy(np.float64)
            sums[c].add(np.where(np.isnan(v), 0.0, v))
    return {c: s.value for c, s in sums.items()}


def _consolidation_summary(rec, n_migrations: int, migration_sums: dict[str, float], energy: float, sc) -> dict:
    """Beloglazov & Buyya's metrics, computed as CloudSim does: SLATAH = time active hosts spend asked for more
    than their capacity over their active time; PDM = demand lost to migrations over all demand; SLAV =
    SLATAH x PDM; ESV = energy x SLAV."""
    ht = rec.host_totals
    on_time = ht.on_time.value
    overloaded = ht.overloaded_time.value
    slatah = float(overloaded / on_time) if on_time > 0 else 0.0
    # its numerator and denominator in seconds: what time slices of a run add up (results/metrics.py, combine)
    on_s = float(on_time * sc.interval_s)
    overloaded_s = float(overloaded * sc.interval_s)
    total = rec.totals["effective"]
    pdm = float(rec.totals["migration_loss"] / total) if total > 0 else 0.0
    # a shutdown: a host that holds VMs at one interval edge and none at the next (the last edge is the end)
    shutdowns = ht.shutdowns
    return {
        "policy": sc.consolidation.policy if sc.consolidation is not None else "none",
        "migration_model": sc.migration.model,
        "migrations": n_migrations,
        "host_on_s": on_s,
        "host_overloaded_s": overloaded_s,
        "slatah": slatah,
        "pdm": pdm,
        "slav": slatah * pdm,
        "esv": energy * slatah * pdm,
        "downtime_s_total": migration_sums["downtime_s"],
        "migration_bytes": migration_sums["bytes"],
        "host_shutdowns": shutdowns,
    }


def _maintenance_summary(rec, maintenance: pd.DataFrame) -> dict:
    """What the drains moved and could not move, and the longest evacuation (s)."""
    return {
        "drains": len(rec.drains),
        "drain_vms_moved": int((maintenance.outcome == "moved").sum()),
        "drain_vms_stuck": int((maintenance.outcome == "stuck").sum()),
        # drained hosts still holding a VM when the run ends: what maintenance could not take down
        "drain_hosts_not_emptied": int(np.isin(sorted({h for d in rec.drains for h in d.hosts}),
                                               rec.vm_host[rec.vm_host >= 0]).sum()),
        "drain_evacuation_s_max": float(np.nanmax([d.evacuation_s for d in rec.drains]))
        if any(np.isfinite(d.evacuation_s) for d in rec.drains) else float("nan"),
    }


def _lifecycle_summary(life, rec, dt_h: float) -> dict:
    """Arrivals, departures, the queue (waits in s) and the demand spent waiting (MIPS-h)."""
    waits = life.waits_s
    q = lambda p: float(np.percentile(waits, p)) if waits.size else 0.0  # noqa: E731
    return {
        "vms_arrived": life.arrivals,
        "vms_departed": int(life.departed.sum()),
        "vms_queued": int(waits.size),
        "queue_wait_s_p50": q(50),
        "queue_wait_s_p95": q(95),
        "queue_wait_s_max": float(waits.max()) if waits.size else 0.0,
        "vms_live_max": int(rec.vms_live.max()) if len(rec.vms_live) else 0,
        "cpu_queued_mips_h": rec.totals["queued"] * dt_h,
    }


def _failures_frame(f) -> pd.DataFrame:
    """One row per VM a host failure stopped (a failure that stopped none: one row with vm -1): when, until when,
    and where and when the VM booted again (NaN / -1: it had not by the end)."""
    rows = []
    for r in f.records:
        for v in r.vms or [-1]:
            rows.append({"host": r.host, "start_s": r.start_s, "end_s": r.end_s, "vm": v,
                         "restart_host": r.restarted_on.get(v, -1), "restarted_s": r.restarted_s.get(v, np.nan)})
    cols = ["host", "start_s", "end_s", "vm", "restart_host", "restarted_s"]
    df = pd.DataFrame(rows, columns=cols)
    df["downtime_s"] = df["restarted_s"] - df["start_s"]
    return df.astype({"host": "int32", "vm": "int32", "restart_host": "int32"})


def _failures_summary(f, duration_s: float, groups: pd.Series, life_s: np.ndarray | None = None) -> dict:
    # with lifecycles over each VM's life in the run (a VM that never lived in it has none: NaN, left out)
    availability = f.availability(duration_s, life_s)
    lived = ~np.isnan(availability)
    out = {
        "host_failures": f.host_failures,
        "vm_failures": int(sum(len(r.vms) for r in f.records)),
        "vm_failure_downtime_s_total": float(f.downtime_s.sum()),
        "vms_waiting_for_restart_max": f.waiting_max,
        "failure_lost_mips_h": f.lost_mips_h,
        "availability_min": float(availability[lived].min()) if lived.any() else 1.0,
        "availability_p50": float(np.median(availability[lived])) if lived.any() else 1.0,
    }
    for g in dict.fromkeys(groups):
        a = availability[(groups == g).to_numpy() & lived]
        out[f"availability_min_{g}"] = float(a.min()) if len(a) else float("nan")
        out[f"availability_p50_{g}"] = float(np.median(a)) if len(a) else float("nan")
    return out


def _failover_summary(f) -> dict:
    """Failover VMs, their paravirtual time and service gaps (s), and VF re-plugs."""
    return {
        "failover_vms": int(f.vm.sum()),
        "failover_paravirtual_s_total": f.paravirtual_s_total,
        "failover_service_gap_s_total": f.gap_s_total,
        "failover_replugs": f.replugs,
        "failover_waiting_at_end": f.waiting_at_end,
    }


def _overhead_summary(totals, reasons: list[str], net_path: list[str], dt_h: float) -> dict:
    """Summary values of the overhead model: MIPS-h, % of guest work, exit and flush rates (1/s), I/O paths."""
    guest_h = totals["guest"] * dt_h
    over_h = totals["overhead"] * dt_h
    back_h = totals["backend"] * dt_h
    row: dict[str, float] = {
        "overhead_mips_h": over_h,
        "backend_mips_h": back_h,
        # what virtualization costs the hosts in all: the VMs' own overhead plus the host threads serving them
        "virt_cpu_mips_h": over_h + back_h,
        # demand-weighted: total overhead over total guest work, so idle VMs do not dominate
        "overhead_pct_mean": over_h / guest_h * 100 if guest_h > 0 else 0.0,
    }
    for c in COMPONENTS:
        row[f"overhead_{c}_mips_h"] = totals[f"component_{c}"] * dt_h
    n = totals.intervals
    for reason in reasons:
        row[f"exits_per_s_{reason}"] = totals[f"exits_{reason}"] / n
    row["tlb_flushes_per_s"] = totals["tlb_flushes"] / n
    paths = np.array(net_path)
    for path in sorted(set(paths) - {""}):
        m = paths == path
        g = float(totals.vm_guest_mips[m].sum()) * dt_h
        o = float(totals.vm_virt_mips[m].sum()) * dt_h
        row[f"virt_cpu_mips_h_net_{path}"] = o
        row[f"cpu_demand_mips_h_net_{path}"] = g
        row[f"overhead_pct_net_{path}"] = o / g * 100 if g > 0 else 0.0
        row[f"net_pps_served_mean_{path}"] = float(totals.vm_net_served_pps[m].sum()) / n
    dt_s = dt_h * 3600
    row["net_packets_demand"] = totals["net_demand"] * dt_s
    row["net_packets_unserved"] = totals["net_unserved"] * dt_s
    row["net_pps_unserved_fraction"] = totals["net_unserved"] / max(totals["net_demand"], 1e-12)
    return row


def sample_vms(seed: int, n_vm: int, n: int) -> np.ndarray:
    """The sorted indices of the `n` VMs (all if fewer) vm_intervals keeps with `sample: n`, drawn from `seed`."""
    if n >= n_vm:
        return np.arange(n_vm, dtype=np.int32)
    return np.sort(rng.stream(seed, rng.OUTPUTS).choice(n_vm, size=n, replace=False)).astype(np.int32)


def _vm_intervals_frame(t: np.ndarray, vm_ids: np.ndarray, guest, served, host, loss, queued, ov,
                        reasons: list[str]) -> pd.DataFrame:
    """vm_intervals rows of the intervals starting at `t` (s) and the VMs `vm_ids`: arrays (len(t), len(vm_ids))
    of guest demand, served, host at the interval's start, migration loss and queued demand (None: the run has
    no migrations / lifecycles) and the overhead series (None: model off). Columns are views where they can be."""
    demand = guest if ov is None else guest + ov.overhead_mips + ov.backend_mips  # what the host must carry
    cols = {
        "time_s": np.repeat(t, len(vm_ids)),
        "vm": np.tile(vm_ids, len(t)),
        "host": host.ravel(),
        "cpu_demand_mips": guest.ravel(),
    }
    if ov is not None:
        cols["cpu_overhead_mips"] = ov.overhead_mips.ravel()
        cols["cpu_backend_mips"] = ov.backend_mips.ravel()
        cols["cpu_effective_mips"] = demand.ravel()
    cols["cpu_served_mips"] = served.ravel()
    if queued is not None:
        # demand = served + unserved + queued: what a VM asks while it waits for a host is queued, not unserved
        cols["cpu_queued_mips"] = queued.ravel()
        cols["cpu_unserved_mips"] = np.maximum(demand - served - queued, 0.0).ravel()
    else:
        # served never exceeds demand; clip the float32 rounding of the two sums
        cols["cpu_unserved_mips"] = np.maximum(demand - served, 0.0).ravel()
    if ov is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            # undefined (NaN) for an idle VM: overhead relative to no guest work
            cols["overhead_pct"] = np.where(guest > 0, ov.overhead_mips / guest * 100, np.nan).astype(np.float32).ravel()
        for c, arr in ov.components_mips.items():
            cols[f"overhead_{c}_mips"] = arr.ravel()
        cols["exits_per_s"] = ov.exits_per_s.sum(axis=2).ravel()
        for j, reason in enumerate(reasons):
            cols[f"exits_per_s_{reason}"] = ov.exits_per_s[:, :, j].ravel()
        cols["tlb_flushes_per_s"] = ov.tlb_flushes_per_s.ravel()
        cols["world_switches_per_s"] = ov.world_switches_per_s.ravel()
        for io in IO_CLASSES:  # e.g. net_pps_demand, disk_iops_served
            asked, carried = ov.io_demand[io.name], ov.io_served[io.name]
            cols[f"{io.name}_{io.rate_unit}_demand"] = asked.ravel()
            cols[f"{io.name}_{io.rate_unit}_served"] = carried.ravel()
            cols[f"{io.name}_{io.rate_unit}_unserved"] = (asked - carried).ravel()
    if loss is not None:
        cols["cpu_migration_loss_mips"] = loss.ravel()
    return pd.DataFrame(cols, copy=False)


# a per-interval frame of at most this many rows is held in memory; a bigger one goes to a Parquet file as the
# run goes
HOLD_VM_INTERVAL_ROWS = 2_000_000
HOLD_HOST_INTERVAL_ROWS = 2_000_000
ROW_GROUP_ROWS = 1_000_000  # rows per Parquet row group of a streamed vm_intervals (whole intervals each)
# and of a streamed host_intervals: a quarter, as its readers (the report, a partitioned run's merge) take a row
# group at a time and a host row is wider in pandas than a VM's without the overhead model
HOST_ROW_GROUP_ROWS = 250_000


class _WindowedFrame:
    """A per-interval frame built while the run goes: a subclass keeps the rows of a window of intervals in
    buffers and turns each full window into frame rows (`_flush`). A small frame is one window held in memory
    (`frame`); a bigger one is written window by window as Parquet row groups into a spool under `spool_dir`,
    never whole in memory. Both go through the same code, so a streamed frame read back equals the held one."""

    def __init__(self, sc: Scenario, stem: str, per_interval: int, hold_rows: int, group_rows: int,
                 spool_dir: Path | None):
        self.sc = sc
        self.streamed = sc.n_intervals * per_interval > hold_rows
        self.window = sc.n_intervals if not self.streamed else \
            min(sc.n_intervals, max(1, group_rows // max(per_interval, 1)))
        self.spool = ParquetSpool(spool_dir, stem) if self.streamed else None
        self.frame: pd.DataFrame | None = None
        self._k0 = 0  # first interval of the window being filled

    def _emit(self, frame: pd.DataFrame, n: int) -> None:
        """Hand on the frame rows of the window's `n` intervals."""
        if self.spool is not None:
            self.spool.write(frame)
        else:
            self.frame = frame  # the whole run: one window
        self._k0 += n

    def _window_full(self, k: int) -> bool:
        return k + 1 - self._k0 == self.window or k + 1 == self.sc.n_intervals

    def finish(self) -> Path | None:
        """Close the spool file and return it (None: the frame is held, in `frame`)."""
        return self.spool.close() if self.spool is not None else None


class VmIntervalRows(_WindowedFrame):
    """The vm_intervals frame, built while the run goes (an engine IntervalSink): the rows of the VMs the
    scenario's outputs choose, turned into frame rows by `_vm_intervals_frame`."""

    def __init__(self, sc: Scenario, n_vm: int, spool_dir: Path | None = None):
        self.detail = sc.outputs.vm_detail(sc.n_intervals * n_vm)
        self.vm_idx = None if self.detail in ("full", "off") else sample_vms(sc.seed, n_vm, int(self.detail))
        self.vm_ids = np.arange(n_vm, dtype=np.int32) if self.vm_idx is None else self.vm_idx
        super().__init__(sc, "vm_intervals", len(self.vm_ids), HOLD_VM_INTERVAL_ROWS, ROW_GROUP_ROWS, spool_dir)
        self._buf: dict | None = None

    def _alloc(self, rows: IntervalRows) -> dict:
        w, n = self.window, len(self.vm_ids)
        f32 = lambda: np.zeros((w, n), np.float32)  # noqa: E731
        return {"guest": f32(), "served": f32(), "host": np.zeros((w, n), np.int32),
                "loss": f32() if rows.migration_loss_mips is not None else None,
                "queued": f32() if rows.queued_mips is not None else None,
                "ov": empty_series(w, n, len(rows.reasons), len(REASON_LABELS)) if rows.overhead is not None
                else None, "reasons": rows.reasons}

    def put(self, rows: IntervalRows) -> None:
        """Keep interval rows.k's rows; write the window out when it is full."""
        if self._buf is None:
            self._buf = self._alloc(rows)
        b, i = self._buf, rows.k - self._k0
        pick = (lambda a: a) if self.vm_idx is None else (lambda a: a[self.vm_idx])  # noqa: E731
        b["guest"][i], b["served"][i], b["host"][i] = pick(rows.guest_mips), pick(rows.served_mips), pick(rows.vm_host)
        for key, value in (("loss", rows.migration_loss_mips), ("queued", rows.queued_mips)):
            if b[key] is not None:
                b[key][i] = pick(value)
        if b["ov"] is not None:
            put_series(b["ov"], i, rows.overhead, self.vm_idx)
        if self._window_full(rows.k):
            self._flush(i + 1)

    def _flush(self, n: int) -> None:
        b, k0 = self._buf, self._k0
        ov = b["ov"]
        if ov is not None and n < self.window:
            ov = replace(ov, **{f.name: ({c: a[:n] for c, a in v.items()} if isinstance(v, dict) else v[:n])
                                for f in fields(ov) for v in [getattr(ov, f.name)]})
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        t = (np.arange(k0, k0 + n) * self.sc.interval_s).astype(np.float64)
        self._emit(_vm_intervals_frame(t, self.vm_ids, cut(b["guest"]), cut(b["served"]), cut(b["host"]),
                                       cut(b["loss"]), cut(b["queued"]), ov, b["reasons"]), n)


# HostRows fields kept per window, with the dtype a window's buffer holds them in
_HOST_SERIES = {"demand_mips": np.float64, "served_mips": np.float64, "on": bool, "on_fraction": np.float32,
                "overloaded": np.float32, "power_w": np.float64, "vms": np.int32, "memory_used_mb": np.float64,
                "overhead_mips": np.float64, "backend_mips": np.float64}


def _host_intervals_frame(t: np.ndarray, hosts: HostTable, s: dict, interval_s: float) -> pd.DataFrame:
    """host_intervals rows of the intervals starting at `t` (s): `s` holds (len(t), hosts) arrays of the
    _HOST_SERIES (time_on_s and time_overloaded_s when the run migrates: `on_fraction` present; the overhead
    columns with the overhead model: `overhead_mips` present). Columns are views where they can be."""
    n_int, n_h = s["on"].shape
    cap = hosts.capacity_mips
    df = pd.DataFrame({
        "time_s": np.repeat(t, n_h),
        "host": np.tile(np.arange(n_h, dtype=np.int32), n_int),
        "host_type": pd.Categorical.from_codes(np.tile(hosts.host_type, n_int), categories=hosts.type_names),
        "state": pd.Categorical.from_codes(s["on"].ravel().astype(np.int8), categories=["off", "on"]),
        "vms": s["vms"].ravel(),
        "cpu_capacity_mips": np.tile(cap, n_int),
        "cpu_demand_mips": s["demand_mips"].ravel(),
        "cpu_served_mips": s["served_mips"].ravel(),
        "cpu_util": (s["served_mips"] / cap).ravel(),
        "power_w": s["power_w"].ravel(),
        "energy_kwh": (s["power_w"] * interval_s / 3.6e6).ravel(),
        "memory_used_mb": s["memory_used_mb"].ravel(),
    }, copy=False)  # 100,000 hosts make 28.8 M rows a day: no copy more than needed
    if "on_fraction" in s:
        df["time_on_s"] = (s["on_fraction"].astype(np.float64) * interval_s).ravel()
        df["time_overloaded_s"] = (s["overloaded"].astype(np.float64) * interval_s).ravel()
    if "overhead_mips" in s:
        df["cpu_overhead_mips"] = s["overhead_mips"].ravel()
        df["cpu_backend_mips"] = s["backend_mips"].ravel()
    return df


class HostIntervalRows(_WindowedFrame):
    """The host_intervals frame, built while the run goes (an engine HostSink)."""

    def __init__(self, sc: Scenario, hosts: HostTable, spool_dir: Path | None = None):
        super().__init__(sc, "host_intervals", len(hosts), HOLD_HOST_INTERVAL_ROWS, HOST_ROW_GROUP_ROWS, spool_dir)
        self.hosts = hosts
        self._buf: dict[str, np.ndarray] | None = None

    def put(self, rows: HostRows) -> None:
        """Keep interval rows.k's rows; write the window out when it is full."""
        if self._buf is None:
            # the SLATAH time columns only when the run migrates, the overhead ones only with the model
            skip = ({"on_fraction", "overloaded"} if not rows.migrating else set()) | \
                ({"overhead_mips", "backend_mips"} if rows.overhead_mips is None else set())
            self._buf = {name: np.zeros((self.window, len(self.hosts)), dtype)
                         for name, dtype in _HOST_SERIES.items() if name not in skip}
        i = rows.k - self._k0
        for name, buf in self._buf.items():
            buf[i] = getattr(rows, name)
        if self._window_full(rows.k):
            n = i + 1
            t = (np.arange(self._k0, self._k0 + n) * self.sc.interval_s).astype(np.float64)
            self._emit(_host_intervals_frame(t, self.hosts, {k: b[:n] for k, b in self._buf.items()},
                                             self.sc.interval_s), n)


def scenario_sha256(sc: Scenario) -> str:
    """Hash of the validated scenario, so equal inputs give equal hashes. Fields left at their defaults are left
    out, so adding a schema field with a default does not change the hash of scenarios that do not use it
    (`consolidate_version` beside it tells runs of different versions apart)."""
    blob = json.dumps(sc.model_dump(mode="json", exclude_defaults=True), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


HOLD_MIGRATION_ROWS = 200_000  # a migrations frame of more rows goes to a Parquet file as the run goes
MIGRATION_PIECE_ROWS = 50_000  # finished migrations turned into frame rows at a time (held), or a row group


class MigrationRows:
    """The migrations frame, built while the run goes (an engine RecordSink): finished migrations become frame
    rows MIGRATION_PIECE_ROWS at a time (a record is about 380 bytes, a row about 90), held while the run has
    at most HOLD_MIGRATION_ROWS of them, then all written as Parquet row groups into a spool under `spool_dir`.
    How many a run will have is not known ahead, unlike intervals x VMs or hosts."""

    def __init__(self, sc: Scenario, spool_dir: Path | None = None):
        self.sc, self.spool_dir = sc, spool_dir
        self.rows = 0
        self.spool: ParquetSpool | None = None
        self._records: list = []
        self._held: list[pd.DataFrame] = []

    def put(self, records: list) -> None:
        self._records.extend(records)
        if len(self._records) >= MIGRATION_PIECE_ROWS:
            self._piece()

    def _piece(self) -> None:
        df = _migrations_frame(self._records, self.sc.duration_s)
        self._records = []
        self.rows += len(df)
        if self.spool is None and self.rows > HOLD_MIGRATION_ROWS:
            self.spool = ParquetSpool(self.spool_dir, "migrations")
            for held in self._held:
                self.spool.write(held)
            self._held = []
        if self.spool is not None:
            self.spool.write(df)
        else:
            self._held.append(df)

    def finish(self) -> tuple[pd.DataFrame | None, Path | None]:
        """(the held frame, None), or (None, the spool file)."""
        if self._records or not (self._held or self.spool):
            self._piece()
        if self.spool is not None:
            return None, self.spool.close()
        return (self._held[0] if len(self._held) == 1 else pd.concat(self._held, ignore_index=True)), None


class _SpooledFrame:
    """A Results frame whose rows a big run wrote to a Parquet file while it went (Results.spooled) instead of
    holding them: read from the file on first access, so it is in memory only when someone asks for it."""

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None  # the dataclass field's default
        value = obj.__dict__.get(self.name)
        if value is None and self.name in obj.spooled:
            value = obj.__dict__[self.name] = pd.read_parquet(obj.spooled[self.name])
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


@dataclass
class Results:
    """Everything one run produced, as pandas frames.

    - `summary`: one row, the run's headline figures (columns, units, definitions: results/metrics.py).
    - `vm_intervals`: per VM per interval: time_s, vm, host, cpu_demand_mips, cpu_served_mips, cpu_unserved_mips.
      A big run writes it to a Parquet file while it goes (`spooled["vm_intervals"]`; `pieces("vm_intervals")`
      reads it a row group at a time) and reads it whole on first access.
    - `host_intervals`: per host per interval: time_s, host, host_type, state, vms, cpu_capacity_mips,
      cpu_demand_mips, cpu_served_mips, cpu_util, power_w, energy_kwh. Spooled as vm_intervals is when big.
    - `vms`: per VM: identity, type, size, trace and the host it was placed on (-1 = rejected).
    - `hosts`: per host: type, size, and the VMs and memory placed on it.
    - `overhead_reasons` (overhead model on): per interval, the datacenter's exit-driven overhead by exit
      reason, `<reason>_mips` (plus `software_mips` for BT callouts, PV hypercalls and injections).
    """

    scenario: Scenario
    run_id: str
    summary: pd.DataFrame
    vms: pd.DataFrame
    hosts: pd.DataFrame
    host_intervals: pd.DataFrame = _SpooledFrame()
    vm_intervals: pd.DataFrame | None = _SpooledFrame()  # None: outputs.vm_intervals off (never built)
    overhead_reasons: pd.DataFrame | None = None
    migrations: pd.DataFrame | None = _SpooledFrame()
    maintenance: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    datacenter: pd.DataFrame | None = None  # VMs arriving and leaving: per interval, VMs live and queued, hosts on
    out_dir: Path | None = field(default=None)
    vm_intervals_detail: str | int = "full"  # "full", "off" or the number of VMs sampled (outputs.vm_intervals)
    # frames written to Parquet while the run went, by stem: a temporary file until written into a run folder
    spooled: dict[str, Path] = field(default_factory=dict)

    def __getstate__(self) -> dict:
        """A pickled Results (a partition's, sent back from a worker process) carries its frames, read from any
        spool file, and no spool: the file goes with the process that wrote it."""
        state = dict(self.__dict__)
        for name, path in self.spooled.items():
            if state.get(name) is None:
                state[name] = pd.read_parquet(path)
        state["spooled"] = {}
        state.pop("_spools", None)
        return state

    def pieces(self, name: str, columns: list[str] | None = None):
        """Frame `name` (its `columns`, None: all) in pieces of whole intervals, in order: a spooled frame a row
        group at a time, never whole in memory (unless it has been read already), a held one in one piece."""
        if name in self.spooled and self.__dict__.get(name) is None:
            yield from parquet_pieces(self.spooled[name], columns)
        else:
            df = getattr(self, name)
            yield df if columns is None else df[columns]

    def frame_names(self) -> list[str]:
        """The stems of the frames this run produced, without reading a spooled one."""
        held = ("summary", "host_intervals", "vms", "hosts", "vm_intervals", "overhead_reasons", "migrations",
                "maintenance", "failures", "datacenter")
        return [k for k in held if k in self.spooled or self.__dict__.get(k) is not None]

    def frame_shape(self, name: str) -> tuple[int, int]:
        """(rows, columns) of frame `name`, a spooled one's from its file's metadata."""
        if name in self.spooled and self.__dict__.get(name) is None:
            return parquet_shape(self.spooled[name])
        return getattr(self, name).shape

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        """The result tables by the file stem they are written under (vm_intervals only when built)."""
        return {k: getattr(self, k) for k in self.frame_names()}

    @property
    def written_frames(self) -> dict[str, pd.DataFrame]:
        """The frames the scenario's `outputs:` asks to write, of those this run produced."""
        return {k: getattr(self, k) for k in self.written_names()}

    def written_names(self) -> list[str]:
        """The stems of the frames the scenario's `outputs:` asks to write, of those this run produced."""
        chosen = self.scenario.outputs.frames
        return [k for k in self.frame_names() if chosen is None or k in chosen]

    @property
    def left_out(self) -> list[str]:
        """What the run's folder does not hold that a full run would, one phrase each, for the report and run.json:
        frames not asked for and a sampled or absent vm_intervals."""
        written = self.written_names()
        out = [f"{k} (not in outputs.frames)" for k in self.frame_names() if k not in written and k != "vm_intervals"]
        n_vm = int(self.summary["vms"].iloc[0])
        if self.vm_intervals_detail == "off":
            out.append("vm_intervals (outputs.vm_intervals: off" + ("" if self.scenario.outputs.vm_intervals else
                                                                    ", the default above "
                                                                    f"{BIG_RUN_VM_INTERVALS:,} VM-intervals") + ")")
        elif self.vm_intervals_detail != "full" and int(self.vm_intervals_detail) < n_vm:
            out.append(f"vm_intervals of {n_vm - int(self.vm_intervals_detail):,} of {n_vm:,} VMs (sampled "
                       f"{int(self.vm_intervals_detail):,} VMs from the seed"
                       + ("" if self.scenario.outputs.vm_intervals else
                          f", the default above {BIG_RUN_VM_INTERVALS:,} VM-intervals") + ")")
        return out

    @property
    def csv_default(self) -> bool:
        """Whether CSV goes beside Parquet when the caller does not say: outputs.csv, else by the run's size."""
        return self.scenario.outputs.csv_for(self.scenario.n_intervals * int(self.summary["vms"].iloc[0]))

    def write(self, out_dir: str | Path, *, csv: bool | None = None, force: bool = False) -> Path:
        """Write the frames `outputs:` chooses as Parquet (and CSV: `csv`, default as outputs.csv or by the run's
        size), the resolved scenario and run.json to out_dir, a new or empty folder (`force` replaces one that
        holds files), whole or not at all; returns it. The HTML report is the report layer's:
        `consolidate.write(res, out_dir)` writes both."""
        self.out_dir = write_run_folder(self, Path(out_dir), csv=csv, force=force)
        return self.out_dir

    def __repr__(self) -> str:
        s = self.summary.iloc[0]
        return (f"<Results {self.scenario.name} run {self.run_id}: {int(s['hosts'])} hosts, {int(s['vms'])} VMs, "
                f"{self.scenario.n_intervals} intervals; {s['energy_kwh']:,.1f} kWh, "
                f"{s['hosts_active_mean']:,.1f} hosts active on average, "
                f"{s['sla_unserved_fraction']:.3%} of CPU demand unserved>")

    def _repr_html_(self) -> str:
        """A notebook's view: the headline figures and the frames' sizes (the frames themselves are attributes)."""
        s = self.summary.iloc[0]
        head = [("energy_kwh", "kWh"), ("hosts_active_mean", "hosts"), ("hosts_active_max", "hosts"),
                ("sla_unserved_fraction", ""), ("vms_rejected", "VMs"), ("wall_s", "s")]
        rows = "".join(f"<tr><th>{k}</th><td>{s[k]:,.6g} {u}</td></tr>" for k, u in head if k in s.index)
        frames = ", ".join(f"<code>{k}</code> {r:,}×{c}" for k in self.frame_names() for r, c in [self.frame_shape(k)])
        return (f"<div><b>Results</b> of <code>{html.escape(self.scenario.name)}</code>, run "
                f"<code>{html.escape(self.run_id)}</code><table>{rows}</table><p>frames: {frames}</p></div>")


def vm_interval_rows(sc: Scenario, n_vm: int, spool_dir: Path | None = None) -> VmIntervalRows | None:
    """The sink that builds a run's vm_intervals (None: outputs.vm_intervals off); a big frame goes to a Parquet
    file in a new temporary folder under `spool_dir` (None: the system's temporary folder)."""
    return None if sc.outputs.vm_detail(sc.n_intervals * n_vm) == "off" else VmIntervalRows(sc, n_vm, spool_dir)


def host_interval_rows(sc: Scenario, hosts: HostTable, spool_dir: Path | None = None) -> HostIntervalRows:
    """The sink that builds a run's host_intervals; a big frame goes to a Parquet file in a new temporary
    folder under `spool_dir` (None: the system's temporary folder)."""
    return HostIntervalRows(sc, hosts, spool_dir)


def migration_rows(sc: Scenario, spool_dir: Path | None = None) -> MigrationRows:
    """The sink that builds a run's migrations frame; a big one goes to a Parquet file in a new temporary folder
    under `spool_dir` (None: the system's temporary folder)."""
    return MigrationRows(sc, spool_dir)


def build_results(sc: Scenario, wl: Workload, hosts: HostTable, rec: RunRecord, run_id: str,
                  wall_s: float, version: str, vm_rows: VmIntervalRows | None = None, *,
                  host_rows: HostIntervalRows, mig_rows: MigrationRows | None = None) -> Results:
    """Assemble the frames and the summary of one run from its record and the vm_intervals, host_intervals and
    migrations sinks it fed (None for migrations: the record kept them)."""
    n_int, n_vm = sc.n_intervals, len(wl.vms)
    n_h = len(hosts)
    dt_h = sc.interval_s / 3600.0
    t = (np.arange(n_int) * sc.interval_s).astype(np.float64)
    totals = rec.totals
    ht = rec.host_totals
    ov = rec.overhead
    detail = sc.outputs.vm_detail(n_int * n_vm)
    spooled, spools = {}, []
    vm_intervals = None
    if vm_rows is not None:
        path = vm_rows.finish()
        if path is not None:
            spooled["vm_intervals"] = path
            spools.append(vm_rows.spool)
        vm_intervals = vm_rows.frame
    path = host_rows.finish()
    host_intervals = host_rows.frame
    if path is not None:
        spooled["host_intervals"] = path
        spools.append(host_rows.spool)
    on_util_mean = _on_util_mean([host_intervals] if path is None else
                                 parquet_pieces(path, ["state", "cpu_util"]), ht.on_host_intervals)
    life = rec.lifecycle

    type_names = np.array(hosts.type_names)
    cap = hosts.capacity_mips

    vms = wl.vms.copy()
    start_host = rec.vm_host_start if rec.vm_host_start is not None else rec.vm_host
    vms["host"] = start_host.astype(np.int32)  # where it was placed at the start
    vms["host_at_end"] = rec.vm_host.astype(np.int32)
    if sc.cloudsim_compat and rec.vm_retired is not None:
        vms["retired"] = rec.vm_retired  # removed as CloudSim removes a VM that asks for no CPU
    vms["placed"] = start_host >= 0
    placed = start_host >= 0
    if life is not None:
        placed = life.placed_ever.copy()  # given a host at the start or when it arrived
        vms["placed"] = placed
        vms["rejected"] = life.rejected
        vms["queued_s"] = np.where(np.isnan(life.queued_at), np.nan, life.queue_end - life.queued_at)
    hosts_df = pd.DataFrame({
        "host": np.arange(n_h, dtype=np.int32),
        "host_type": type_names[hosts.host_type],
        "cores": hosts.cores.astype(np.int32),
        "mips_per_core": hosts.mips_per_core,
        "cpu_capacity_mips": cap,
        "memory_mb": hosts.memory_mb,
        "vms": np.bincount(start_host[start_host >= 0], minlength=n_h),
        "memory_used_mb": np.bincount(start_host[start_host >= 0],
                                      weights=vms["memory_mb"].to_numpy(float)[start_host >= 0], minlength=n_h),
    })

    values = {**_run_summary(sc, run_id, version, n_h, n_vm, placed), **_host_summary(ht, on_util_mean),
              **_cpu_summary(totals, dt_h), "wall_s": wall_s}
    features = {"always"}
    if wl.warnings:
        features.add("trace_warnings")
        values["trace_samples_clipped"] = wl.clipped
        values["trace_warnings"] = len(wl.warnings)
    datacenter = None
    if life is not None:
        features.add("lifecycles")
        values["vms_rejected"] = int(life.rejected.sum())
        values["cpu_rejected_mips_h"] = float(totals.vm_effective_mips[life.rejected].sum() * dt_h)
        unserved_h = totals["unserved_not_queued"] * dt_h
        values["cpu_unserved_mips_h"] = unserved_h
        eff = values["cpu_effective_mips_h"]
        values["sla_unserved_fraction"] = unserved_h / eff if eff > 0 else 0.0
        values.update(_lifecycle_summary(life, rec, dt_h))
        datacenter = pd.DataFrame({"time_s": t, "vms_live": rec.vms_live, "vms_queued": rec.vms_queued,
                                   "hosts_active": ht.active.copy()})
    if sc.cloudsim_compat and rec.vm_retired is not None:
        features.add("cloudsim_compat")
        values["vms_retired"] = int(rec.vm_retired.sum())
    migrations = None
    if rec.migrations is not None:
        mig_rows = mig_rows or MigrationRows(sc)
        mig_rows.put(rec.migrations)  # what the run kept: all of them without a sink, else none
        migrations, path = mig_rows.finish()
        if path is not None:
            spooled["migrations"] = path
            spools.append(mig_rows.spool)
        sums = _column_sums([migrations] if path is None else parquet_pieces(path, ["downtime_s", "bytes"]),
                            ["downtime_s", "bytes"], mig_rows.rows)
        features.add("consolidation")
        values.update(_consolidation_summary(rec, mig_rows.rows, sums, ht.energy_kwh.value, sc))
    maintenance = None
    if rec.drains is not None and sc.maintenance:
        maintenance = _maintenance_frame(rec.drains)
        features.add("maintenance")
        values.update(_maintenance_summary(rec, maintenance))
    if rec.failover is not None:
        features.add("failover")
        values.update(_failover_summary(rec.failover))
    failures = None
    if rec.failures is not None:
        features.add("failures")
        failures = _failures_frame(rec.failures)
        values.update(_failures_summary(rec.failures, sc.duration_s, wl.vms["group"],
                                        life.life_s(sc.duration_s) if life is not None else None))
    if ov is not None:
        features.add("overhead")
        values.update(_overhead_summary(totals, ov.reasons, ov.cfg_net_path, dt_h))
    # column set and order come from the metric registry, which also checks every value is registered
    summary = summary_frame(values, features)
    reasons = None
    if ov is not None:
        keep = [j for j, _ in enumerate(REASON_LABELS) if ov.reason_mips[:, j].any()]
        reasons = pd.DataFrame({"time_s": t, **{f"{REASON_LABELS[j]}_mips": ov.reason_mips[:, j] for j in keep}})
        vms["net_path"] = ov.cfg_net_path
    res = Results(scenario=sc, run_id=run_id, summary=summary, vm_intervals=vm_intervals,
                  host_intervals=host_intervals, vms=vms, hosts=hosts_df, overhead_reasons=reasons,
                  migrations=migrations, maintenance=maintenance, failures=failures, datacenter=datacenter,
                  vm_intervals_detail=detail, spooled=spooled)
    res._spools = spools  # their folders live as long as the Results
    return res
