"""Reader for the native trace format (DESIGN.md section 5): CSV or Parquet, `time_s` + `cpu_util` + optional columns.

A file holds one VM, or several in one long table with a `vm` column. Every problem is reported
with the file and the 1-based data row, because a planner fixing a 100k-row export needs the row.

Two readings. A fixed-step trace (the classic one: every VM from t = 0 to the end, a fixed step, time_s on the
run's clock starting at 0 or earlier) is resampled onto the grid. A timed trace, one with any per-VM column
(`start_s`, `end_s`, `vcpus`, `memory_mb`: columns.PER_VM) or with timestamps in time_s (epoch seconds or
milliseconds, ISO 8601), goes through timeline.py as the cluster-trace readers do: irregular steps and gaps by
the source's `gap` policy, each VM living from `start_s` to `end_s` (default: its samples), with its own shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from consolidate import limits
from consolidate.errors import TraceError, cut, not_a_regular_file
from consolidate.scenario.model import Scenario, VmGroup
from consolidate.workload import columns as C
from consolidate.workload import inspect as inspect_
from consolidate.workload.sources import GroupTraces, fit_to_grid, from_grid, register, select
from consolidate.workload.timeline import Series, to_grid, to_seconds


@dataclass(frozen=True)
class Trace:
    """One VM's trace on a fixed grid: sample i covers [start_s + i*interval_s, start_s + (i+1)*interval_s)."""

    name: str
    start_s: float
    interval_s: float
    cpu_util: np.ndarray  # fraction 0..1 of the VM's vCPUs
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # optional columns, by name


EPOCH_S = 1e9  # a time_s at or beyond this (2001-09-09) is an epoch timestamp: the trace is timed
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


def _load(path: Path) -> pd.DataFrame:
    """A native file's table, its columns checked (unknown or missing ones name the file)."""
    df = _read_table(path)
    unknown = [c for c in df.columns if c not in C.KNOWN]
    if unknown:
        raise TraceError(str(path), f"unknown column {unknown[0]!r} (expected {C.TIME}, {C.CPU}, optional {C.VM} "
                         f"and any of: {', '.join(C.OPTIONAL)}; per VM: {', '.join(C.PER_VM)})")
    for col in (C.TIME, C.CPU):
        if col not in df.columns:
            raise TraceError(str(path), f"required column {col!r} is missing (got columns: {', '.join(map(str, df.columns))})")
    return df


def read_native(path: Path) -> list[Trace]:
    """Read a fixed-step native trace file; returns one Trace per VM (one, unless the file has a `vm` column).

    Raises TraceError naming the file and row for unknown or missing columns, NaN, values out of
    range, unsorted or duplicated times, and gaps.
    """
    path = Path(path)
    return _fixed_step(path, _load(path))


def _fixed_step(path: Path, df: pd.DataFrame) -> list[Trace]:
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


def _files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        if not files:
            raise TraceError(str(source), "folder holds no .csv or .parquet trace files")
        return files
    return [source]


def read_native_source(source: Path) -> list[Trace]:
    """A fixed-step native file, or a folder of them (one VM per file, sorted by name)."""
    return [t for f in _files(Path(source)) for t in read_native(f)]


def is_timed(df: pd.DataFrame) -> bool:
    """Whether a native table is a timed trace: it has a per-VM column, or time_s holds timestamps (numbers at or
    beyond EPOCH_S, datetimes, or ISO 8601 strings)."""
    if any(c in df.columns for c in C.PER_VM):
        return True
    t = df[C.TIME]
    if t.dtype.kind == "M":
        return True
    if t.dtype.kind in "iuf":
        v = np.abs(t.to_numpy(np.float64))
        return bool(np.isfinite(v).any() and np.nanmax(v) >= EPOCH_S)
    first = t.dropna().astype(str).str.strip()
    first = first[first != ""]
    if first.empty or pd.notna(pd.to_numeric(first.iloc[0], errors="coerce")):
        return False  # a numeric clock with a stray value: the fixed-step reading names it
    return pd.notna(pd.to_datetime(first.iloc[0], errors="coerce", utc=True, format="ISO8601"))


def _seconds(path: Path, df: pd.DataFrame, col: str, missing_ok: bool = False) -> np.ndarray:
    """A time column as seconds on the trace's clock (timeline.to_seconds: epoch s/ms, ISO 8601; Parquet datetimes
    too); empty cells NaN when `missing_ok`. TraceError names the file, the row and the column."""
    s = df[col].reset_index(drop=True)
    if s.dtype.kind == "M":
        s = pd.to_datetime(s, utc=True)
        out = (s - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(np.float64)
        bad = np.flatnonzero(np.isnan(out)) if not missing_ok else np.zeros(0, int)
        if bad.size:
            raise TraceError(str(path), f"{col}: missing (expected a time)", row=int(bad[0]) + 1)
        return out
    given = s.notna().to_numpy() & (s.astype(str).str.strip() != "").to_numpy() if missing_ok else \
        np.ones(len(s), bool)
    at = np.flatnonzero(given)
    out = np.full(len(s), np.nan)
    try:
        out[at] = to_seconds(s.iloc[at].reset_index(drop=True), str(path), col)
    except TraceError as exc:  # its row counts the given cells: name the file's row
        raise TraceError(exc.file, exc.message, row=int(at[exc.row - 1]) + 1 if exc.row else None) from None
    return out


def _numbers(path: Path, df: pd.DataFrame, col: str, lo: float, missing_ok: bool = False,
             above: bool = False) -> np.ndarray:
    """A numeric column as float64, each value >= lo (> lo with `above`); empty cells NaN when `missing_ok`."""
    raw = df[col].reset_index(drop=True)
    v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    nan = ~np.isfinite(v)
    if missing_ok:
        nan &= raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    bad = np.flatnonzero(nan)
    if bad.size:
        got = raw.iloc[bad[0]]
        got = repr(got) if isinstance(got, str) else "an empty cell or NaN"
        raise TraceError(str(path), f"{col} is missing, NaN or not a number (got {got}, expected a number)",
                         row=int(bad[0]) + 1)
    bad = np.flatnonzero((v <= lo) if above else (v < lo))
    if bad.size:
        raise TraceError(str(path), f"{col} out of range (got {v[bad[0]]:g}, expected {'>' if above else '>='} "
                         f"{lo:g})", row=int(bad[0]) + 1)
    return v


def _one_per_vm(path: Path, name: str, col: str, v: np.ndarray, rows: np.ndarray, unit: str) -> float:
    """A per-VM column's value (the VM's first row); TraceError naming the row where it changes."""
    first = v[0]
    same = np.isnan(v) if np.isnan(first) else v == first
    bad = np.flatnonzero(~same)
    if bad.size:
        raise TraceError(str(path), f"{col} changes within VM {name!r} (got {v[bad[0]]:g}{unit}, expected "
                         f"{first:g}{unit} as in its first row: one value per VM)", row=int(rows[bad[0]]))
    return float(first)


def read_timed(path: Path, df: pd.DataFrame | None = None) -> list[Series]:
    """A timed native file's VMs as timeline Series (file order, or first appearance with a `vm` column): samples
    at time_s (seconds on the trace's clock), cpu_util (fraction of the VM's vCPUs; above 1 is left to the
    source's over_100), the optional columns, and per VM its life (start_s, end_s) and shape (vcpus, memory_mb
    in MiB) where given. Raises TraceError naming the file, the row and the column."""
    path = Path(path)
    df = _load(path) if df is None else df
    if len(df) == 0:
        raise TraceError(str(path), f"file has no rows (expected rows of {C.TIME}, {C.CPU})")
    t = _seconds(path, df, C.TIME)
    util = _numbers(path, df, C.CPU, 0.0)
    extra = {c: _numbers(path, df, c, 0.0) for c in df.columns if c in C.OPTIONAL}
    life = {c: _seconds(path, df, c, missing_ok=True) for c in (C.START, C.END) if c in df.columns}
    shape = {c: _numbers(path, df, c, 0.0, missing_ok=True, above=True) for c in (C.VCPUS, C.MEMORY)
             if c in df.columns}
    rows = np.arange(1, len(df) + 1)
    groups = df.groupby(C.VM, sort=False).indices.items() if C.VM in df.columns else [(path.stem, np.arange(len(df)))]
    out = []
    for name, idx in groups:
        name, r = str(name), rows[idx]
        vm = {c: _one_per_vm(path, name, c, v[idx], r, " s") for c, v in life.items()}
        vm.update({c: _one_per_vm(path, name, c, v[idx], r, "") for c, v in shape.items()})
        a, e = vm.get(C.START, np.nan), vm.get(C.END, np.nan)
        if np.isnan(a) != np.isnan(e):
            raise TraceError(str(path), f"VM {name!r} has only one of {C.START}, {C.END} (got "
                             f"{C.START if np.isnan(e) else C.END}; expected both, or neither for a life from its "
                             "samples)", row=int(r[0]))
        if not np.isnan(a) and e <= a:
            raise TraceError(str(path), f"{C.END} not after {C.START} for VM {name!r} (got {e:.10g} <= {a:.10g} s, "
                             "expected a life of positive length)", row=int(r[0]))
        out.append(Series(name=name, t_s=t[idx], util=util[idx], extra={c: v[idx] for c, v in extra.items()},
                          rows=r, where=str(path), vcpus=vm.get(C.VCPUS, np.nan), memory_mb=vm.get(C.MEMORY, np.nan),
                          life_s=None if np.isnan(a) else (a, e)))
    return out


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Every VM of the file or folder (path relative to the scenario file), CPU as a fraction 0..1 and the
    optional columns in their own units, per scenario interval; NaN where a VM's trace lacks a column."""
    src = g.trace
    path = Path(src.native)
    if not path.is_absolute():
        path = sc.base_dir / path
    tables = [(f, _load(f)) for f in _files(path)]
    if any(is_timed(df) for _, df in tables):
        return _read_timed_group(path, tables, g, sc, gen)
    traces = [t for f, df in tables for t in _fixed_step(f, df)]
    traces = [traces[k] for k in select(len(traces), src, gen)]
    need = limits.run_bytes(len(traces), 0, sc.n_intervals, sc.overhead_enabled, read_vms=len(traces))
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


def _read_timed_group(path: Path, tables: list, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """A timed trace's VMs (after `sample` and `limit`) on the grid. The run's t = 0 is time 0 of a relative clock
    (every time below EPOCH_S), else the earliest sample, unless `start` says otherwise."""
    src = g.trace
    if src.repeat:
        raise TraceError(str(path), "repeat applies to fixed-step traces (got a timed trace: per-VM columns "
                         f"{', '.join(C.PER_VM)} or timestamps in {C.TIME}; expected repeat: false)")
    if sc.cloudsim_compat:  # as validation.lifecycle_checks refuses for the cluster traces, known before reading
        raise TraceError(str(path), "a timed trace's VMs arrive and leave, which does not combine with cloudsim_compat "
                         "(got both, expected one of them)")
    series = [s for f, df in tables for s in read_timed(f, df)]
    series = [series[k] for k in select(len(series), src, gen)]
    need = limits.run_bytes(len(series), 0, sc.n_intervals, sc.overhead_enabled, read_vms=len(series))
    if need > limits.available_memory_bytes():
        raise TraceError(str(path), f"too many VMs for this machine (got {len(series):,} VMs over {sc.n_intervals:,} "
                         f"intervals, about {limits.gib(need)}; expected fewer VMs or a coarser interval_s)")
    if src.start is None and all(np.nanmax(np.abs(s.t_s), initial=0.0) < EPOCH_S and
                                 (s.life_s is None or max(map(abs, s.life_s)) < EPOCH_S) for s in series):
        src = src.model_copy(update={"start": 0.0})  # seconds on the run's clock, as a fixed-step trace's
    grid = to_grid(series, sc, src, str(path))
    return from_grid(grid, [str(path)] * len(grid.names))


def looks_like(path: Path) -> bool:
    """Whether `path` is a native file, or a folder whose first trace file is one (its columns name time_s and
    cpu_util)."""
    try:
        f = _files(path)[0] if path.is_dir() else path
        if not f.is_file():
            return False
        if f.suffix.lower() == ".csv":
            with f.open("rb") as fh:
                cols = [c.strip() for c in fh.readline(65536).decode(errors="replace").strip().split(",")]
        elif f.suffix.lower() in (".parquet", ".pq"):
            cols = pq.ParquetFile(f).schema_arrow.names
        else:
            return False
    except (TraceError, OSError, pa.ArrowException):
        return False
    return C.TIME in cols and C.CPU in cols


def inspect_series(path: Path) -> tuple[list[Series], list[str]]:
    """Every VM of a native file or folder as timeline Series (`trace inspect`): a timed file's as a run reads
    them, a fixed-step file's samples at their times."""
    out = []
    for f in _files(Path(path)):
        df = _load(f)
        if is_timed(df):
            out += read_timed(f, df)
            continue
        for t in _fixed_step(f, df):
            step = t.interval_s if np.isfinite(t.interval_s) else 0.0
            out.append(Series(name=t.name, t_s=t.start_s + np.arange(len(t.cpu_util)) * step, util=t.cpu_util,
                              extra=t.extra, where=str(f)))
    return out, []


register("native", read_group)
inspect_.register("native", looks_like, inspect_series)
