"""What the report shows of host_intervals and migrations, gathered in one pass over each frame's pieces (a
spooled frame's row groups, Results.pieces; host_intervals' hold whole intervals), so a big run's report never
reads them whole.

Per interval (hosts on, power, utilisation percentiles of the hosts on) each piece gives its intervals' values
exactly. Across intervals (per host, per host type, headroom) sums and counts add up piece by piece; the headroom
percentiles keep the hosts-on utilisations as float32 (4 bytes per on host-interval, rounding far below the three
digits the page shows).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95]
COLUMNS = ["time_s", "host", "host_type", "state", "cpu_util", "power_w", "energy_kwh"]
OVERHEAD_COLUMNS = ["cpu_capacity_mips", "cpu_overhead_mips", "cpu_backend_mips"]


@dataclass
class HostView:
    active: pd.Series  # hosts on per interval, indexed by time_s (s)
    power_w: pd.Series  # datacenter power per interval (W), indexed by time_s
    util_q: pd.DataFrame  # per interval (time_s) with a host on: QUANTILES of the on hosts' cpu_util (0..1)
    on_util: np.ndarray  # float32: cpu_util of every on host-interval, in frame order
    type_on: dict[str, int]  # per host type: on host-intervals
    type_energy_kwh: dict[str, float]  # per host type: energy of all its host-intervals (kWh)
    type_util_sum: dict[str, float]  # per host type: sum of cpu_util over its on host-intervals
    overhead_pct: pd.Series | None  # per host on at some time: mean (overhead + backend) / capacity (%) while on


def host_view(pieces: Iterable[pd.DataFrame], overhead: bool) -> HostView:
    """The report's view of host_intervals from its pieces in time order (columns COLUMNS, plus OVERHEAD_COLUMNS
    when `overhead`)."""
    active, power, quant, utils = [], [], [], []
    t_on: dict[str, int] = {}
    t_energy: dict[str, float] = {}
    t_util: dict[str, float] = {}
    ov_sum = ov_n = np.zeros(0)
    for df in pieces:
        if not len(df):
            continue
        on_mask = (df["state"] == "on").to_numpy()
        on = df[on_mask]
        times = np.unique(df["time_s"].to_numpy())
        active.append(on.groupby("time_s", observed=True).size().reindex(times, fill_value=0))
        power.append(df.groupby("time_s")["power_w"].sum())
        if len(on):
            quant.append(on.groupby("time_s")["cpu_util"].quantile(QUANTILES).unstack())
        utils.append(on["cpu_util"].to_numpy(np.float32))
        types = df["host_type"].astype(str)
        for t, n in on.groupby(types[on_mask], observed=True).size().items():
            t_on[t] = t_on.get(t, 0) + int(n)
        for t, e in df.groupby(types, observed=True)["energy_kwh"].sum().items():
            t_energy[t] = t_energy.get(t, 0.0) + float(e)
        for t, u in on.groupby(types[on_mask], observed=True)["cpu_util"].sum().items():
            t_util[t] = t_util.get(t, 0.0) + float(u)
        if overhead:
            share = ((on["cpu_overhead_mips"] + on["cpu_backend_mips"]) / on["cpu_capacity_mips"] * 100).to_numpy()
            host = on["host"].to_numpy()
            size = max(len(ov_sum), int(host.max()) + 1 if len(host) else 0)
            ov_sum = np.pad(ov_sum, (0, size - len(ov_sum))) + np.bincount(host, weights=share, minlength=size)
            ov_n = np.pad(ov_n, (0, size - len(ov_n))) + np.bincount(host, minlength=size)
    seen = ov_n > 0
    return HostView(
        active=pd.concat(active) if active else pd.Series(dtype=np.int64),
        power_w=pd.concat(power) if power else pd.Series(dtype=float),
        util_q=pd.concat(quant) if quant else pd.DataFrame(columns=QUANTILES),
        on_util=np.concatenate(utils) if utils else np.zeros(0, np.float32),
        type_on=t_on, type_energy_kwh=t_energy, type_util_sum=t_util,
        overhead_pct=pd.Series(ov_sum[seen] / ov_n[seen], index=np.flatnonzero(seen)) if overhead else None)


MIGRATION_COLUMNS = ["start_s", "end_s", "reason", "queued_s"]


@dataclass
class MigrationView:
    n: int  # migrations in all
    started: pd.DataFrame  # migrations started per interval (index: the interval's number) and reason (columns)
    duration_s_mean: float  # over those that ended (NaN: none did)
    queued: int  # migrations that waited for a free migration slot
    queued_s: float  # how long they waited in all (s)
    interval_s: float  # the run's interval (s)


def migration_view(pieces: Iterable[pd.DataFrame], interval_s: float) -> MigrationView:
    """The report's view of the migrations frame from its pieces (columns MIGRATION_COLUMNS)."""
    n, started, dur_sum, dur_n, queued, queued_s = 0, None, 0.0, 0, 0, 0.0
    for df in pieces:
        if not len(df):
            continue
        n += len(df)
        counts = pd.crosstab((df["start_s"] // interval_s).astype(int), df["reason"])
        started = counts if started is None else started.add(counts, fill_value=0)
        dur = (df["end_s"] - df["start_s"]).dropna()
        dur_sum, dur_n = dur_sum + float(dur.sum()), dur_n + len(dur)
        q = df["queued_s"].to_numpy()
        queued, queued_s = queued + int((q > 0).sum()), queued_s + float(q[q > 0].sum())
    if started is None:
        started = pd.DataFrame()
    return MigrationView(n=n, started=started.fillna(0).astype(np.int64).sort_index(),
                         duration_s_mean=dur_sum / dur_n if dur_n else float("nan"), queued=queued, queued_s=queued_s,
                         interval_s=interval_s)
