"""One run's Results from the Results of its independent partitions (consolidate/scenario/partitions.py).

Frames are concatenated with the whole scenario's host and VM indices and sorted as a whole run sorts them;
per-interval datacenter totals add up interval by interval. The summary goes through the metric registry
(metrics.combine_partitions), and the columns the partitions' summaries cannot give are recomputed from the
merged frames: maxima over time of datacenter totals and percentiles over VMs.

The merge is deterministic: the same partitions' Results give the same bits whichever process or machine ran
them and in whatever order they finished (they are taken in the scenario's partition order).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from consolidate.costmodel.tables import REASON_LABELS
from consolidate.results.frames import Results, sample_vms, scenario_sha256
from consolidate.results.metrics import combine_partitions, lookup, partition_rule, summary_frame
from consolidate.results.writer import ParquetSpool
from consolidate.scenario import partitions
from consolidate.scenario.model import Scenario

# columns a partition without VMs that arrive or leave lacks, and what they are for its VMs (end_s: the run's end)
_LIFECYCLE_DEFAULTS = {"rejected": False, "start_s": 0.0, "cpu_queued_mips": 0.0}


def _align(frames: list[pd.DataFrame], defaults: dict) -> list[pd.DataFrame]:
    """The frames with the same columns, in the widest frame's order (a run with VMs that arrive or leave lays
    out more); a missing column takes its default (NaN if none) in the widest frame's dtype."""
    widest = max(frames, key=lambda d: d.shape[1])
    out = []
    for df in frames:
        missing = {c: pd.Series(defaults.get(c, np.nan), index=df.index).astype(widest[c].dtype)
                   for c in widest.columns if c not in df}
        out.append(df.assign(**missing)[list(widest.columns)] if missing else df[list(widest.columns)])
    return out


def _remap(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Local indices to the whole run's (`table[local]`); -1 (none) stays -1."""
    values = np.asarray(values)
    out = np.full(values.shape, -1, dtype=np.int32)
    ok = values >= 0
    out[ok] = table[values[ok]]
    return out


def _concat(frames: list[pd.DataFrame], by: list[str]) -> pd.DataFrame:
    """Concatenate and sort by `by` (stable: ties keep partition order)."""
    df = pd.concat(frames, ignore_index=True)
    if len(df):
        order = np.lexsort([df[c].to_numpy() for c in reversed(by)])
        df = df.take(order).reset_index(drop=True)
    return df


def _vm_tables(parts: Sequence[Results]) -> list[np.ndarray]:
    """Each partition's local VM index -> the whole run's: VMs are numbered group after group (a group lives in
    one partition), in the group's own order."""
    keys = [(p.vms["group_index"].to_numpy(np.int64), np.arange(len(p.vms))) for p in parts]
    group = np.concatenate([g for g, _ in keys]) if keys else np.zeros(0, np.int64)
    part = np.concatenate([np.full(len(g), i) for i, (g, _) in enumerate(keys)]) if keys else group
    local = np.concatenate([v for _, v in keys]) if keys else group
    order = np.lexsort([local, group])  # by group, then the VM's place in it
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return [rank[part == i] for i in range(len(parts))]


def _spooled(p: Results, name: str) -> bool:
    """Whether partition `p` wrote frame `name` to a file as it ran (and nobody has read it whole since)."""
    return name in p.spooled and p.__dict__.get(name) is None


def _windows(parts, name: str, remaps, by: list[str], defaults: dict, keep: np.ndarray | None):
    """The merged frame `name` in time order, window by window: each window holds the intervals every partition
    has read so far (a spooled frame's row group at a time, a held one whole), remapped by `remaps[i]`, aligned
    and sorted by `by`; rows of VMs not in `keep` (None: all) dropped. A run of held partitions is one window."""
    its = [p.pieces(name) for p in parts]
    bufs: list[pd.DataFrame | None] = [None] * len(parts)
    empty = []
    while True:
        for i, it in enumerate(its):
            while (bufs[i] is None or len(bufs[i]) == 0) and its[i] is not None:
                bufs[i] = next(its[i], None)
                if bufs[i] is None:
                    its[i] = None
                elif len(bufs[i]) == 0:
                    empty.append(remaps[i](bufs[i]))
                    bufs[i] = None
        live = [b for b in bufs if b is not None and len(b)]
        if not live:
            if empty:  # partitions without rows: the columns alone
                yield _concat(_align(empty, defaults), by)
            return
        empty = []
        t_hi = min(b["time_s"].iloc[-1] for b in live)
        take = []
        for i, b in enumerate(bufs):
            if b is None or not len(b):
                continue
            cut = int(np.searchsorted(b["time_s"].to_numpy(), t_hi, side="right"))
            rows, bufs[i] = b.iloc[:cut], b.iloc[cut:]
            take.append(remaps[i](rows))
        frame = _concat(_align(take, defaults), by)
        yield frame if keep is None else frame[frame["vm"].isin(keep)].reset_index(drop=True)


def _merge_frame(parts, name: str, remaps, by: list[str], defaults: dict, keep: np.ndarray | None = None,
                 visit=None) -> tuple[pd.DataFrame | None, ParquetSpool | None]:
    """Frame `name` of the whole run from the partitions': held (when every partition held its own) or written
    window by window to a new spool file, never whole in memory (when one spooled it). `visit(window)` sees
    each window. Returns (frame, None) or (None, spool)."""
    spool = ParquetSpool(None, name) if any(_spooled(p, name) for p in parts) else None
    held = []
    for window in _windows(parts, name, remaps, by, defaults, keep):
        if visit is not None:
            visit(window)
        if spool is not None:
            spool.write(window)
        else:
            held.append(window)
    if spool is not None:
        return None, spool
    return (held[0] if len(held) == 1 else pd.concat(held, ignore_index=True)), None


class _IntervalTotals:
    """Datacenter totals per interval from host_intervals windows of whole intervals, reduced as a run reduces
    its hosts' rows (one row of hosts at a time): hosts on and power (W)."""

    def __init__(self) -> None:
        self.active: list[np.ndarray] = []
        self.power_w: list[np.ndarray] = []

    def __call__(self, window: pd.DataFrame) -> None:
        n = len(np.unique(window["time_s"].to_numpy()))
        if not n:
            return
        self.active.append((window["state"] == "on").to_numpy().reshape(n, -1).sum(axis=1).astype(np.int64))
        self.power_w.append(window["power_w"].to_numpy().reshape(n, -1).sum(axis=1))


def _per_interval_total(frames: list[pd.DataFrame | None], cols: list[str], n_int: int) -> dict[str, np.ndarray]:
    return {c: sum((f[c].to_numpy() for f in frames if f is not None and c in f), np.zeros(n_int)) for c in cols}


def merge(sc: Scenario, parts: Sequence[Results], run_id: str, wall_s: float) -> Results:
    """The Results of scenario `sc` from its partitions' Results, in the order of partitions.names(sc)."""
    names = partitions.names(sc)
    hmaps = [partitions.host_indices(sc, n) for n in names]
    vmaps = _vm_tables(parts)
    n_int = sc.n_intervals

    hosts = _concat([p.hosts.assign(host=_remap(p.hosts["host"], h)) for p, h in zip(parts, hmaps)], ["host"])
    per_interval = _IntervalTotals()
    hi, hi_spool = _merge_frame(parts, "host_intervals",
                                [lambda d, h=h: d.assign(host=_remap(d["host"], h)) for h in hmaps],
                                ["time_s", "host"], {}, visit=per_interval)
    defaults = {**_LIFECYCLE_DEFAULTS, "end_s": sc.duration_s}
    vms_df = _concat(_align([p.vms.assign(vm=v, host=_remap(p.vms["host"], h),
                                          host_at_end=_remap(p.vms["host_at_end"], h))
                             for p, h, v in zip(parts, hmaps, vmaps)], defaults), ["vm"])
    # vm_intervals: which VMs it keeps, then the rows (in memory, or streamed when a partition spooled its own)
    details = [p.vm_intervals_detail for p in parts]
    has_vmi = all("vm_intervals" in p.frame_names() for p in parts)
    detail = "off" if not has_vmi else "full" if all(d == "full" for d in details) else \
        sum(len(p.vms) if d == "full" else int(d) for p, d in zip(parts, details))
    keep = None
    if detail == "full" and sc.outputs.vm_intervals is None:
        # partitions each small enough to keep every VM, the whole run not: keep the VMs the whole run's default
        # sample keeps (the same draw over the whole scenario's VM indices)
        want = sc.outputs.vm_detail(sc.n_intervals * len(vms_df))
        if want != "full":
            keep, detail = sample_vms(sc.seed, len(vms_df), int(want)), want
    vmi, spool = None, None
    if has_vmi:
        vmi, spool = _merge_frame(parts, "vm_intervals",
                                  [lambda d, h=h, v=v: d.assign(vm=_remap(d["vm"], v), host=_remap(d["host"], h))
                                   for h, v in zip(hmaps, vmaps)], ["time_s", "vm"], defaults, keep)
    migrations = None
    if any(p.migrations is not None for p in parts):
        migrations = pd.concat([p.migrations.assign(vm=_remap(p.migrations["vm"], v),
                                                    source=_remap(p.migrations["source"], h),
                                                    destination=_remap(p.migrations["destination"], h))
                                for p, h, v in zip(parts, hmaps, vmaps) if p.migrations is not None],
                               ignore_index=True)
        migrations = migrations.take(np.argsort(migrations["start_s"].to_numpy(), kind="stable")) \
            .reset_index(drop=True)
    t = np.arange(n_int) * sc.interval_s
    reasons = None
    if any(p.overhead_reasons is not None for p in parts):
        present = {c for p in parts if p.overhead_reasons is not None for c in p.overhead_reasons if c != "time_s"}
        cols_r = [f"{r}_mips" for r in REASON_LABELS if f"{r}_mips" in present]
        reasons = pd.DataFrame({"time_s": t, **_per_interval_total([p.overhead_reasons for p in parts], cols_r,
                                                                  n_int)})
        reasons = reasons.astype({c: parts[0].overhead_reasons[c].dtype for c in cols_r
                                  if parts[0].overhead_reasons is not None and c in parts[0].overhead_reasons})
    datacenter = None
    if any(p.datacenter is not None for p in parts):
        live = np.zeros(n_int, np.int64)
        queued = np.zeros(n_int, np.int64)
        for p in parts:
            if p.datacenter is not None:
                live += p.datacenter["vms_live"].to_numpy(np.int64)
                queued += p.datacenter["vms_queued"].to_numpy(np.int64)
            else:  # its VMs all live the whole run and none waits
                live += len(p.vms)
        active = np.concatenate(per_interval.active) if per_interval.active else np.zeros(0, np.int64)
        datacenter = pd.DataFrame({"time_s": t, "vms_live": live, "vms_queued": queued, "hosts_active": active})

    summary = _summary(sc, parts, per_interval, vms_df, datacenter, run_id, wall_s)
    spools = {name: sp for name, sp in (("host_intervals", hi_spool), ("vm_intervals", spool)) if sp is not None}
    res = Results(scenario=sc, run_id=run_id, summary=summary, vm_intervals=vmi, host_intervals=hi, vms=vms_df,
                  hosts=hosts, overhead_reasons=reasons, migrations=migrations, datacenter=datacenter,
                  vm_intervals_detail=detail, spooled={name: sp.close() for name, sp in spools.items()})
    res._spools = list(spools.values())  # the merged files' folders live as long as the Results
    return res


def _summary(sc: Scenario, parts: Sequence[Results], per_interval: _IntervalTotals, vms: pd.DataFrame,
             datacenter: pd.DataFrame | None, run_id: str, wall_s: float) -> pd.DataFrame:
    rows = [p.summary.iloc[0].to_dict() for p in parts]
    columns = list(dict.fromkeys(c for r in rows for c in r))
    n_int = sc.n_intervals
    waits = vms["queued_s"].dropna().to_numpy() if "queued_s" in vms else np.zeros(0)
    q = lambda pct: float(np.percentile(waits, pct)) if waits.size else 0.0  # noqa: E731
    recomputed = {
        "run_id": run_id,
        "scenario_sha256": scenario_sha256(sc),
        "wall_s": wall_s,
        # maxima over time of datacenter totals: the whole run's hosts per interval, reduced as a run does
        "hosts_active_max": int(np.concatenate(per_interval.active).max()) if n_int else 0,
        "power_w_max": float(np.concatenate(per_interval.power_w).max()) if n_int else 0.0,
        "vms_live_max": int(datacenter["vms_live"].max()) if datacenter is not None and n_int else 0,
        "queue_wait_s_p50": q(50),
        "queue_wait_s_p95": q(95),
    }
    values = {}
    for c in columns:
        if c in recomputed:
            values[c] = recomputed[c]
        elif partition_rule(c)[0] in ("recompute", "difference"):
            raise ValueError(f"{c}: cannot be merged from partitions (no rule recomputes it)")
        else:
            values[c] = combine_partitions(c, rows)
    features = {lookup(c).feature for c in values}
    return summary_frame(values, features)
