"""Reader for the native trace format (DESIGN.md section 5): CSV or Parquet, `time_s` + `cpu_util` + optional columns.

A file holds one VM, or several in one long table with a `vm` column. Every problem is reported
with the file and the 1-based data row, because a planner fixing a 100k-row export needs the row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from consolidate import limits
from consolidate.errors import TraceError, cut, not_a_regular_file
from consolidate.scenario.model import Scenario, VmGroup
from consolidate.workload import columns as C
from consolidate.workload.sources import GroupTraces, fit_to_grid, register


@dataclass(frozen=True)
class Trace:
    """One VM's trace on a fixed grid: sample i covers [start_s + i*interval_s, start_s + (i+1)*interval_s)."""

    name: str
    start_s: float
    interval_s: float
    cpu_util: np.ndarray  # fraction 0..1 of the VM's vCPUs
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # optional columns, by name


READ_FACTOR = 8  # memory per byte of trace file while pandas parses it and the reader checks it (measured ~3-5)


def _sniff(path: Path, suffix: str) -> None:
    """Refuse garbage from its first bytes, before pandas reads gigabytes of it (a NUL-filled 64 MB "CSV" once
    took 2 GB and a 268 MB error message)."""
    with path.open("rb") as f:
        head = f.read(65536)
    if suffix == ".csv" and b"\0" in head:
        raise TraceError(str(path), "not a text file (got NUL bytes, expected CSV text)")
    if suffix in (".parquet", ".pq") and not head.startswith(b"PAR1"):
        raise TraceError(str(path), f"not a Parquet file (got {head[:4]!r} at the start, expected b'PAR1')")


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    why = not_a_regular_file(path)
    if why is not None:
        raise TraceError(str(path), f"trace file {why}")
    if suffix in (".csv", ".parquet", ".pq"):
        _sniff(path, suffix)
        n_bytes = path.stat().st_size
        have = limits.available_memory_bytes()
        if n_bytes * READ_FACTOR > have:
            raise TraceError(str(path), f"too large to read here (got {n_bytes:,} bytes, about {READ_FACTOR}x that "
                             f"in memory once parsed; expected at most {limits.gib(have)} free: split the file)")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "unreadable file"
        raise TraceError(str(path), f"cannot be read as {suffix[1:]} ({exc.__class__.__name__}: {cut(str(exc), 200)})") from None
    raise TraceError(str(path), f"unknown trace format (got {suffix or 'no extension'!r}, expected .csv or .parquet)")


def _check_one(path: Path, df: pd.DataFrame, rows: np.ndarray, name: str) -> Trace:
    """Validate one VM's rows; `rows` are the 1-based data rows in the file, for messages."""
    t = df[C.TIME].to_numpy(dtype=float)
    if len(t) == 0:
        raise TraceError(str(path), f"VM {name!r} has no rows")
    for col in df.columns:
        if col == C.VM:
            continue
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raw = df[col].iloc[bad[0]]
            got = repr(raw) if isinstance(raw, str) else "an empty cell or NaN"
            raise TraceError(str(path), f"{col} is missing, NaN or not a number (got {got}, expected a number)",
                             row=int(rows[bad[0]]))
        lo, hi = (0.0, 1.0) if col == C.CPU else (0.0, np.inf)
        if col == C.TIME:
            lo = -np.inf
        bad = np.flatnonzero((v < lo) | (v > hi))
        if bad.size:
            want = "0..1" if col == C.CPU else ">= 0"
            raise TraceError(str(path), f"{col} out of range (got {v[bad[0]]:g}, expected {want})",
                             row=int(rows[bad[0]]))
    if len(t) > 1:
        dt = np.diff(t)
        bad = np.flatnonzero(dt <= 0)
        if bad.size:
            i = bad[0] + 1
            raise TraceError(str(path), f"time_s not increasing (got {t[i]:g} after {t[i - 1]:g}, expected sorted "
                             "strictly increasing times)", row=int(rows[i]))
        step = dt[0]
        bad = np.flatnonzero(~np.isclose(dt, step, rtol=1e-9, atol=1e-9))
        if bad.size:
            i = bad[0] + 1
            raise TraceError(str(path), f"gap or uneven step in time_s (got {t[i]:g} after {t[i - 1]:g}, expected a "
                             f"fixed step of {step:g} s)", row=int(rows[i]))
    else:
        step = float("nan")  # a one-row trace is constant; the caller decides its interval
    extra = {c: df[c].to_numpy(dtype=float) for c in df.columns if c in C.OPTIONAL}
    return Trace(name=name, start_s=float(t[0]), interval_s=float(step),
                 cpu_util=df[C.CPU].to_numpy(dtype=float), extra=extra)


def read_native(path: Path) -> list[Trace]:
    """Read a native trace file; returns one Trace per VM (one, unless the file has a `vm` column).

    Raises TraceError naming the file and row for unknown or missing columns, NaN, values out of
    range, unsorted or duplicated times, and gaps.
    """
    path = Path(path)
    df = _read_table(path)
    unknown = [c for c in df.columns if c not in C.KNOWN]
    if unknown:
        raise TraceError(str(path), f"unknown column {unknown[0]!r} (expected {C.TIME}, {C.CPU}, optional {C.VM} "
                         f"and any of: {', '.join(C.OPTIONAL)})")
    for col in (C.TIME, C.CPU):
        if col not in df.columns:
            raise TraceError(str(path), f"required column {col!r} is missing (got columns: {', '.join(map(str, df.columns))})")
    rows = np.arange(1, len(df) + 1)
    if C.VM not in df.columns:
        return [_check_one(path, df, rows, path.stem)]
    if len(df) == 0:
        raise TraceError(str(path), f"file has no rows (expected rows of {C.VM}, {C.TIME}, {C.CPU})")
    traces = []
    # sort=False keeps VMs in order of first appearance: the file's order is the user's order
    for name, idx in df.groupby(C.VM, sort=False).indices.items():
        traces.append(_check_one(path, df.iloc[idx], rows[idx], str(name)))
    return traces


def read_native_source(source: Path) -> list[Trace]:
    """A native file, or a folder of them (one VM per file, sorted by name)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        if not files:
            raise TraceError(str(source), "folder holds no .csv or .parquet trace files")
        return [t for f in files for t in read_native(f)]
    return read_native(source)


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Every VM of the file or folder (path relative to the scenario file), CPU as a fraction 0..1 and the
    optional columns in their own units, per scenario interval; NaN where a VM's trace lacks a column."""
    src = g.trace
    path = Path(src.native)
    if not path.is_absolute():
        path = sc.base_dir / path
    traces = read_native_source(path)
    need = limits.run_bytes(len(traces), 0, sc.n_intervals, sc.overhead_enabled)
    if need > limits.available_memory_bytes():  # the scenario could not count a file's VMs before reading it
        raise TraceError(str(path), f"too many VMs for this machine (got {len(traces):,} VMs over {sc.n_intervals:,} "
                         f"intervals, about {limits.gib(need)}; expected fewer VMs or a coarser interval_s)")
    names = [t.name for t in traces]
    labels = [str(path)] * len(traces)
    out = []
    cols = sorted({c for t in traces for c in t.extra})
    extras = {c: np.full((len(traces), sc.n_intervals), np.nan) for c in cols}
    for j, t in enumerate(traces):
        where = f"{path} (VM {t.name!r})"
        # a one-row trace has no step of its own: held for the whole run only when asked (repeat: true)
        if not np.isfinite(t.interval_s) and not src.repeat:
            raise TraceError(where, "one sample cannot tell how long it covers (got 1 row, expected at least 2 "
                             "rows, or repeat: true to hold it for the whole run)")
        step = t.interval_s if np.isfinite(t.interval_s) else sc.duration_s - t.start_s
        out.append(fit_to_grid(t.cpu_util[None, :], step, t.start_s, sc, src.repeat, where))
        for c, v in t.extra.items():
            extras[c][j] = fit_to_grid(v[None, :], step, t.start_s, sc, src.repeat, where)[0]
    return GroupTraces(names, labels, np.vstack(out), extras)


register("native", read_group)
