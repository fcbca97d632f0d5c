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
from consolidate.engine.record import IntervalRows, RunRecord, empty_series, put_series
from consolidate.engine.state import HostTable
from consolidate.hardware.assignment import IO_CLASSES
from consolidate.results.metrics import SUMMARY_METRICS, summary_frame
from consolidate.results.writer import ParquetSpool, parquet_shape, write_run_folder
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


def _host_summary(rec, cap: np.ndarray, energy_kwh: np.ndarray) -> dict:
    """Hosts on, energy (kWh), datacenter power (W) and the powered-on hosts' utilisation (0..1)."""
    n_int = rec.host_on.shape[0]
    active = rec.host_on.sum(axis=1)
    total_power = rec.host_power_w.sum(axis=1)
    on_util = (rec.host_served_mips / cap)[rec.host_on]
    return {
        "hosts_active_mean": float(active.mean()) if n_int else 0.0,
        "hosts_active_max": int(active.max()) if n_int else 0,
        "energy_kwh": float(energy_kwh.sum()),
        "power_w_mean": float(total_power.mean()) if n_int else 0.0,
        "power_w_max": float(total_power.max()) if n_int else 0.0,
        "host_cpu_util_mean": float(on_util.mean()) if on_util.size else 0.0,
    }


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


def _consolidation_summary(rec, migrations: pd.DataFrame, energy_kwh: np.ndarray, sc) -> dict:
    """Beloglazov & Buyya's metrics, computed as CloudSim does: SLATAH = time active hosts spend asked for more
    than their capacity over their active time; PDM = demand lost to migrations over all demand; SLAV =
    SLATAH x PDM; ESV = energy x SLAV."""
    on_time = rec.host_on_fraction.astype(np.float64)
    slatah = float(rec.host_overloaded.sum(dtype=np.float64) / on_time.sum()) if on_time.sum() > 0 else 0.0
    # its numerator and denominator in seconds: what time slices of a run add up (results/metrics.py, combine)
    on_s = float(on_time.sum() * sc.interval_s)
    overloaded_s = float(rec.host_overloaded.sum(dtype=np.float64) * sc.interval_s)
    total = rec.totals["effective"]
    pdm = float(rec.totals["migration_loss"] / total) if total > 0 else 0.0
    # a shutdown: a host that holds VMs at one interval edge and none at the next (the last edge is the end)
    placed = rec.vm_host >= 0
    at_end = np.bincount(rec.vm_host[placed], minlength=rec.host_vms.shape[1]) > 0
    holds = np.vstack([rec.host_vms > 0, at_end[None, :]])
    shutdowns = int((holds[:-1] & ~holds[1:]).sum())
    energy = float(energy_kwh.sum())
    return {
        "policy": sc.consolidation.policy if sc.consolidation is not None else "none",
        "migration_model": sc.migration.model,
        "migrations": int(len(migrations)),
        "host_on_s": on_s,
        "host_overloaded_s": overloaded_s,
        "slatah": slatah,
        "pdm": pdm,
        "slav": slatah * pdm,
        "esv": energy * slatah * pdm,
        "downtime_s_total": float(migrations["downtime_s"].sum()),
        "migration_bytes": float(migrations["bytes"].sum()),
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


# vm_intervals of at most this many rows is held in memory; a bigger one goes to a Parquet file as the run goes
HOLD_VM_INTERVAL_ROWS = 2_000_000
ROW_GROUP_ROWS = 1_000_000  # rows per Parquet row group of a streamed vm_intervals (whole intervals each)


class VmIntervalRows:
    """The vm_intervals frame, built while the run goes (an engine IntervalSink): it keeps the rows of a window
    of intervals of the VMs the scenario's outputs choose, and turns each full window into frame rows with
    `_vm_intervals_frame`. A small frame is one window held in memory; a bigger one is written window by window
    as Parquet row groups into `spool_dir`, never whole in memory. Both go through the same code, so a streamed
    frame read back equals the held one."""

    def __init__(self, sc: Scenario, n_vm: int, spool_dir: Path | None = None):
        self.sc = sc
        self.detail = sc.outputs.vm_detail(sc.n_intervals * n_vm)
        self.vm_idx = None if self.detail in ("full", "off") else sample_vms(sc.seed, n_vm, int(self.detail))
        self.vm_ids = np.arange(n_vm, dtype=np.int32) if self.vm_idx is None else self.vm_idx
        n_rows = sc.n_intervals * len(self.vm_ids)
        self.streamed = n_rows > HOLD_VM_INTERVAL_ROWS
        self.window = sc.n_intervals if not self.streamed else \
            min(sc.n_intervals, max(1, ROW_GROUP_ROWS // max(len(self.vm_ids), 1)))
        self.spool = ParquetSpool(spool_dir, "vm_intervals") if self.streamed else None
        self.frame: pd.DataFrame | None = None
        self._buf: dict | None = None
        self._k0 = 0

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
        if i + 1 == self.window or rows.k + 1 == self.sc.n_intervals:
            self._flush(i + 1)

    def _flush(self, n: int) -> None:
        b, k0 = self._buf, self._k0
        ov = b["ov"]
        if ov is not None and n < self.window:
            ov = replace(ov, **{f.name: ({c: a[:n] for c, a in v.items()} if isinstance(v, dict) else v[:n])
                                for f in fields(ov) for v in [getattr(ov, f.name)]})
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        t = (np.arange(k0, k0 + n) * self.sc.interval_s).astype(np.float64)
        frame = _vm_intervals_frame(t, self.vm_ids, cut(b["guest"]), cut(b["served"]), cut(b["host"]),
                                    cut(b["loss"]), cut(b["queued"]), ov, b["reasons"])
        if self.spool is not None:
            self.spool.write(frame)
        else:
            self.frame = frame  # the whole run: one window
        self._k0 += n

    def finish(self) -> Path | None:
        """Close the spool file and return it (None: the frame is held, in `frame`)."""
        return self.spool.close() if self.spool is not None else None


def scenario_sha256(sc: Scenario) -> str:
    """Hash of the validated scenario, so equal inputs give equal hashes. Fields left at their defaults are left
    out, so adding a schema field with a default does not change the hash of scenarios that do not use it
    (`consolidate_version` beside it tells runs of different versions apart)."""
    blob = json.dumps(sc.model_dump(mode="json", exclude_defaults=True), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
      A big run writes it to a Parquet file while it goes (`spooled["vm_intervals"]`, read it in pieces with
      pyarrow) and reads it on first access.
    - `host_intervals`: per host per interval: time_s, host, host_type, state, vms, cpu_capacity_mips,
      cpu_demand_mips, cpu_served_mips, cpu_util, power_w, energy_kwh.
    - `vms`: per VM: identity, type, size, trace and the host it was placed on (-1 = rejected).
    - `hosts`: per host: type, size, and the VMs and memory placed on it.
    - `overhead_reasons` (overhead model on): per interval, the datacenter's exit-driven overhead by exit
      reason, `<reason>_mips` (plus `software_mips` for BT callouts, PV hypercalls and injections).
    """

    scenario: Scenario
    run_id: str
    summary: pd.DataFrame
    host_intervals: pd.DataFrame
    vms: pd.DataFrame
    hosts: pd.DataFrame
    vm_intervals: pd.DataFrame | None = _SpooledFrame()  # None: outputs.vm_intervals off (never built)
    overhead_reasons: pd.DataFrame | None = None
    migrations: pd.DataFrame | None = None
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
        state.pop("_spool", None)
        return state

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


def build_results(sc: Scenario, wl: Workload, hosts: HostTable, rec: RunRecord, run_id: str,
                  wall_s: float, version: str, vm_rows: VmIntervalRows | None = None) -> Results:
    """Assemble the frames and the summary of one run from its record and the vm_intervals sink it fed."""
    n_int, n_vm = rec.host_on.shape[0], len(wl.vms)
    n_h = len(hosts)
    dt_h = sc.interval_s / 3600.0
    t = (np.arange(n_int) * sc.interval_s).astype(np.float64)
    totals = rec.totals
    ov = rec.overhead
    detail = sc.outputs.vm_detail(n_int * n_vm)
    spooled = {}
    vm_intervals = None
    if vm_rows is not None:
        path = vm_rows.finish()
        if path is not None:
            spooled["vm_intervals"] = path
        vm_intervals = vm_rows.frame
    life = rec.lifecycle

    type_names = np.array(hosts.type_names)
    energy_kwh = rec.host_power_w * sc.interval_s / 3.6e6
    cap = hosts.capacity_mips
    host_intervals = pd.DataFrame({
        "time_s": np.repeat(t, n_h),
        "host": np.tile(np.arange(n_h, dtype=np.int32), n_int),
        "host_type": pd.Categorical.from_codes(np.tile(hosts.host_type, n_int), categories=hosts.type_names),
        "state": pd.Categorical.from_codes(rec.host_on.ravel().astype(np.int8), categories=["off", "on"]),
        "vms": rec.host_vms.ravel(),
        "cpu_capacity_mips": np.tile(cap, n_int),
        "cpu_demand_mips": rec.host_demand_mips.ravel(),
        "cpu_served_mips": rec.host_served_mips.ravel(),
        "cpu_util": (rec.host_served_mips / cap).ravel(),
        "power_w": rec.host_power_w.ravel(),
        "energy_kwh": energy_kwh.ravel(),
        "memory_used_mb": rec.host_memory_used_mb.ravel(),
    }, copy=False)  # views of the record's series where they can be: 100,000 hosts make 28.8 M rows a day
    if rec.migrations is not None:
        host_intervals["time_on_s"] = (rec.host_on_fraction.astype(np.float64) * sc.interval_s).ravel()
        host_intervals["time_overloaded_s"] = (rec.host_overloaded.astype(np.float64) * sc.interval_s).ravel()
    if ov is not None:
        host_intervals["cpu_overhead_mips"] = ov.host_overhead_mips.ravel()
        host_intervals["cpu_backend_mips"] = ov.host_backend_mips.ravel()

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

    values = {**_run_summary(sc, run_id, version, n_h, n_vm, placed), **_host_summary(rec, cap, energy_kwh),
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
                                   "hosts_active": rec.host_on.sum(axis=1).astype(np.int64)})
    if sc.cloudsim_compat and rec.vm_retired is not None:
        features.add("cloudsim_compat")
        values["vms_retired"] = int(rec.vm_retired.sum())
    migrations = None
    if rec.migrations is not None:
        migrations = _migrations_frame(rec.migrations, sc.duration_s)
        features.add("consolidation")
        values.update(_consolidation_summary(rec, migrations, energy_kwh, sc))
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
    res._spool = vm_rows.spool if vm_rows is not None else None  # its folder lives as long as the Results
    return res
