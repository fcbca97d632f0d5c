"""Timestamped traces onto the run's grid: epoch seconds, milliseconds or ISO times, irregular steps and gaps, each
VM with its own start and end.

A VM's samples are piecewise constant: sample i holds its value from its time t_i for its duration (given by
the format, as OpenDC's fragments do, or the step to the next sample). A step longer than `gap_s` (default
twice the VM's median step) is a gap, filled by the source's `gap` policy: `hold` the last value (the
default, as OpenDC replays a fragment), `zero`, or `error`. Each scenario interval takes the time-average of
that function over it (the exact integral, so total CPU work is kept whatever the steps); outside the VM's life
it is 0. The VM lives from its first sample to the end of its last; `start` maps a trace time to the run's t = 0
(default: the earliest sample of the group's VMs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from consolidate.errors import TraceError, cut
from consolidate.scenario.model import Scenario, TraceSource

MS_THRESHOLD = 1e11  # a clock value above this is epoch milliseconds (1e11 s is the year 5138; 1e11 ms is 1973)


def to_seconds(values, where: str, column: str) -> np.ndarray:
    """Trace times as float64 seconds: numbers (seconds, or milliseconds when they exceed MS_THRESHOLD, as every
    epoch-ms clock since 1973 does) or ISO 8601 strings. Raises TraceError naming the first bad value's row."""
    s = pd.Series(values)
    if s.dtype.kind in "iuf":
        t = s.to_numpy(np.float64)
    else:
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().all():
            t = num.to_numpy(np.float64)
        elif num.notna().any() and pd.isna(pd.to_datetime(s.iloc[int(np.argmax(num.isna().to_numpy()))],
                                                          errors="coerce", utc=True, format="ISO8601")):
            # a numeric clock with a stray value: name that value, not the first number ISO parsing refuses
            bad = int(np.argmax(num.isna().to_numpy()))
            raise TraceError(where, f"{column}: not a time (got {cut(repr(s.iloc[bad]), 60)}, expected epoch "
                             "seconds, milliseconds or an ISO 8601 timestamp)", row=bad + 1)
        else:
            parsed = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
            if parsed.isna().any():  # Materna (GWA-T-13) writes day first: 01.11.2015 00:00:00
                parsed = parsed.fillna(pd.to_datetime(s, errors="coerce", utc=True, format="%d.%m.%Y %H:%M:%S"))
            bad = np.flatnonzero(parsed.isna().to_numpy())
            if bad.size:
                raise TraceError(where, f"{column}: not a time (got {cut(repr(s.iloc[bad[0]]), 60)}, expected epoch "
                                 "seconds, milliseconds or an ISO 8601 timestamp)", row=int(bad[0]) + 1)
            return (parsed - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise TraceError(where, f"{column}: missing or not a number (expected a time)", row=int(bad[0]) + 1)
    if t.size and np.nanmax(np.abs(t)) > MS_THRESHOLD:
        t = t / 1000.0
    return t


def start_of(src: TraceSource, where: str) -> float | None:
    """The `start` option as seconds on the trace's clock (None: the earliest sample)."""
    if src.start is None:
        return None
    return float(to_seconds([src.start], where, "start")[0])


@dataclass
class Series:
    """One VM's samples on its trace's own clock (seconds). `dur_s` None: each lasts to the next sample."""

    name: str
    t_s: np.ndarray
    util: np.ndarray  # fraction of the VM's CPU (may exceed 1 before clipping)
    dur_s: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    rows: np.ndarray | None = None  # 1-based rows in `where`, for messages
    where: str = ""
    vcpus: float = np.nan
    memory_mb: float = np.nan
    mhz: float = np.nan  # the VM's CPU capacity, all vCPUs together (MHz), where the trace has it
    life_s: tuple[float, float] | None = None  # the VM's life where the trace states it (Azure); else its samples'


@dataclass
class Grid:
    """A group's VMs on the run grid: util (VMs, intervals), extra columns alike, life on the run clock (s)."""

    names: list[str]
    util: np.ndarray
    extra: dict[str, np.ndarray]
    start_s: np.ndarray
    end_s: np.ndarray
    vcpus: np.ndarray
    memory_mb: np.ndarray
    mhz: np.ndarray
    clipped: int = 0  # samples above 100% clipped
    warnings: list[str] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)  # per VM: steps longer than gap_s


def _segments(s: Series, src: TraceSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Segment starts, ends and sample indices of one VM, gaps filled by the policy; and the count of gaps."""
    t = s.t_s
    n = len(t)
    if n > 1:
        step = np.diff(t)
        bad = np.flatnonzero(step <= 0)
        if bad.size:
            i = bad[0] + 1
            row = int(s.rows[i]) if s.rows is not None else None
            raise TraceError(s.where, f"VM {s.name!r}: time not increasing (got {t[i]:g} after {t[i - 1]:g} s, "
                             "expected sorted strictly increasing times)", row=row)
    if s.dur_s is not None:
        dur = np.asarray(s.dur_s, dtype=np.float64)
        typical = float(np.median(dur)) if n else 0.0
        nxt = np.append(t[1:], np.inf)
        hole = nxt - (t + dur)
        dur = np.minimum(dur, nxt - t)  # an overlap: the later sample wins
    else:
        step = np.diff(t)
        typical = float(np.median(step)) if n > 1 else np.nan
        dur = np.append(step, typical if n > 1 else np.nan)
        hole = np.zeros(n)
    limit = src.gap_s if src.gap_s is not None else 2 * typical
    if s.dur_s is None and n > 1:
        gap = np.append(step > limit * (1 + 1e-9), False)
        hole = np.where(gap, dur - typical, 0.0)
        dur = np.where(gap, typical, dur)
    else:
        gap = np.isfinite(hole) & (hole > max(limit - typical, 0.0) + 1e-9)  # after the last sample: no gap
    n_gaps = int(gap.sum())
    if n_gaps and src.gap == "error":
        i = int(np.flatnonzero(gap)[0])
        row = int(s.rows[i + 1]) if s.rows is not None and i + 1 < n else None
        raise TraceError(s.where, f"VM {s.name!r}: gap in the samples (got {hole[i] + dur[i]:g} s after the sample "
                         f"at {t[i]:g}, expected at most {limit:g} s; gap: hold or zero fills it)", row=row)
    if src.gap == "hold":
        # the value holds over the gap (and over any shorter hole between fragments)
        dur = dur + np.where(np.isfinite(hole) & (hole > 0), hole, 0.0)
    return t, t + dur, np.arange(n), n_gaps


def segments(s: Series, src: TraceSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One VM's segments (starts, ends in s on its own clock, sample indices) with gaps filled by `src.gap`, and
    its count of gaps; raises TraceError on unsorted times or, with gap: error, on a gap."""
    return _segments(s, src)


def _integral_at(a: np.ndarray, e: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The integral from -inf to each x of the function that is v[i] on [a[i], e[i]) (sorted, disjoint), else 0."""
    pts = np.empty(2 * len(a))
    pts[0::2], pts[1::2] = a, e
    cum = np.zeros(2 * len(a))
    cum[1::2] = np.cumsum(v * (e - a))
    cum[2::2] = cum[1:-1:2]
    return np.interp(x, pts, cum, left=0.0, right=cum[-1] if len(cum) else 0.0)


def to_grid(series, sc: Scenario, src: TraceSource, where: str) -> Grid:
    """Every VM of a group on the run grid (see the module docstring), its life on the run clock, clipped or
    refused above 100% by `src.over_100`. VMs whose life misses the run are dropped, said in the warnings.

    `series` may be any iterable of Series, used once: each VM is put on the grid and let go, so memory holds the
    grid and one VM's samples (a sized iterable, as joined.Selected, lets the grid be allocated once). Without
    `start` the origin is the earliest sample, which needs every Series first (a list)."""
    origin = start_of(src, where)
    if origin is None:
        series = list(series)
        origin = min((float(s.t_s[0]) for s in series if len(s.t_s)), default=0.0)
    edges = np.arange(sc.n_intervals + 1) * sc.interval_s
    cap = len(series) if hasattr(series, "__len__") else 64
    util = np.zeros((cap, sc.n_intervals))
    xtra: dict[str, np.ndarray] = {}
    names, starts, ends, shapes, gaps = [], [], [], [], []
    clipped, dropped = 0, 0
    for s in series:
        if len(s.t_s) == 0:
            continue
        u = np.asarray(s.util, dtype=np.float64)
        over = np.flatnonzero(u > 1.0 + 1e-9)
        if over.size:
            if src.over_100 == "error":
                row = int(s.rows[over[0]]) if s.rows is not None else None
                raise TraceError(s.where, f"VM {s.name!r}: utilisation above 100% (got {u[over[0]] * 100:g}%, "
                                 "expected at most 100, or over_100: clip)", row=row)
            clipped += int(over.size)
            u = np.minimum(u, 1.0)
        if len(s.t_s) == 1 and s.dur_s is None:
            # one sample: it covers one of the scenario's intervals
            s = Series(s.name, s.t_s, u, np.array([sc.interval_s]), s.extra, s.rows, s.where, s.vcpus, s.memory_mb,
                       s.mhz, s.life_s)
        a, e, idx, n_gaps = _segments(s, src)
        a, e = a - origin, e - origin
        life0, life1 = float(a[0]), float(e[-1])
        if s.life_s is not None:  # the stated life bounds the samples (none is counted outside it)
            life0, life1 = s.life_s[0] - origin, s.life_s[1] - origin
            a, e = np.clip(a, life0, life1), np.clip(e, life0, life1)
        if life1 <= 0 or life0 >= sc.duration_s:
            dropped += 1
            continue
        n = len(names)
        if n == len(util):  # an unsized iterable (or more VMs than said): grow by half
            util = np.vstack([util, np.zeros((len(util) // 2 + 1, sc.n_intervals))])
            xtra = {c: np.vstack([v, np.full((len(v) // 2 + 1, sc.n_intervals), np.nan)]) for c, v in xtra.items()}
        util[n] = np.diff(_integral_at(a, e, u[idx], edges)) / sc.interval_s
        for c, v in s.extra.items():
            if c not in xtra:
                xtra[c] = np.full(util.shape, np.nan)
            xtra[c][n] = np.diff(_integral_at(a, e, np.asarray(v, np.float64)[idx], edges)) / sc.interval_s
        names.append(s.name)
        starts.append(max(life0, 0.0))
        ends.append(min(life1, sc.duration_s))
        shapes.append((s.vcpus, s.memory_mb, s.mhz))
        gaps.append(n_gaps)
    warnings = []
    if dropped:
        warnings.append(f"{where}: {dropped} VMs live outside the run's {sc.duration_s:g} s from start "
                        f"{origin:g} s and were left out")
    if clipped:
        warnings.append(f"{where}: {clipped} samples above 100% utilisation clipped to 100%")
    n = len(names)
    sh = np.array(shapes, dtype=np.float64).reshape(n, 3)
    return Grid(names=names, util=util[:n] if n < len(util) else util,
                extra={c: v[:n] for c, v in sorted(xtra.items())} if n else {},
                start_s=np.array(starts, dtype=np.float64), end_s=np.array(ends, dtype=np.float64),
                vcpus=sh[:, 0], memory_mb=sh[:, 1], mhz=sh[:, 2], clipped=clipped, warnings=warnings, gaps=gaps)
