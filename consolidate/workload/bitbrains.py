"""Reader for the Grid Workloads Archive's Bitbrains (GWA-T-12: fastStorage, Rnd) and Materna (GWA-T-13) traces
(`bitbrains: PATH`): a folder of per-VM CSV files (or one such file), `;`-separated (with tabs after the `;`):

| column | used as |
|---|---|
| `Timestamp [ms]` | sample time: epoch seconds in GWA-T-12 despite the name (milliseconds and Materna's `dd.mm.yyyy HH:MM:SS` are read too) |
| `CPU cores` | vCPUs (first row) |
| `CPU capacity provisioned [MHZ]` | the VM's CPU (MHz, all cores) |
| `CPU usage [%]` | utilisation (% of the provisioned capacity) |
| `Memory capacity provisioned [KB]` | memory (KiB; first row) |
| `Memory usage [KB]` | `mem_used_bytes` (what a pre-copy migration sends; packing with memory_basis: used) |

Other columns are ignored. One VM per file, named by the file's stem; files are read one at a time, by pyarrow's
CSV reader (numbers in C, ~5x pandas' string reading); a file it refuses or whose values fail a check is read
again as strings (pandas) so that the error names the row and the column.
Samples are about 300 s apart with jitter and gaps, which the group's `gap` policy fills (timeline.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from consolidate.errors import TraceError, cut, not_a_regular_file
from consolidate.scenario.model import Scenario, VmGroup
from consolidate.workload.sources import GroupTraces, from_grid, register, select
from consolidate.workload.timeline import Series, to_grid, to_seconds

TIME, CORES, CAP, UTIL, MEM, MEM_USED = ("Timestamp [ms]", "CPU cores", "CPU capacity provisioned [MHZ]",
                                         "CPU usage [%]", "Memory capacity provisioned [KB]", "Memory usage [KB]")
REQUIRED = (TIME, CORES, CAP, UTIL, MEM)
MAX_FILE_BYTES = 1 << 30  # one VM's month is ~1 MB; a 1 GiB "VM file" is not one


def files_of(path: Path) -> list[Path]:
    """The trace's files: the file itself, or the folder's .csv files sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise TraceError(str(path), "folder holds no .csv files (expected one GWA-T-12/13 file per VM)")
        return files
    return [path]


def looks_like(path: Path) -> bool:
    """Whether `path` is a GWA-T-12/13 file, or a folder whose first .csv file is one (its header names TIME)."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        return False
    with files[0].open("rb") as f:
        return TIME.encode() in f.read(4096).split(b"\n", 1)[0]


def read_file(path: Path) -> Series:
    """One VM's file."""
    why = not_a_regular_file(path)
    if why is not None:
        raise TraceError(str(path), f"trace file {why}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise TraceError(str(path), f"too large for one VM's trace (got {path.stat().st_size:,} bytes, expected at "
                         f"most {MAX_FILE_BYTES:,})")
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        raise TraceError(str(path), "not a text file (got NUL bytes, expected ';'-separated CSV)")
    fast = _read_fast(path, data)
    return fast if fast is not None else _read_strings(path)


def _series(path: Path, t: np.ndarray, num: dict[str, np.ndarray]) -> Series:
    order = np.argsort(t, kind="stable")  # a few GWA files repeat or reorder a timestamp: sort, keep the last
    t, rows = t[order], order + 1
    uniq = np.append(np.diff(t) > 0, True)
    extra = {"mem_used_bytes": num[MEM_USED][order][uniq] * 1024.0} if MEM_USED in num else {}
    return Series(name=path.stem, t_s=t[uniq], util=num[UTIL][order][uniq] / 100.0, extra=extra,
                  rows=rows[uniq], where=str(path), vcpus=float(num[CORES][0]), memory_mb=float(num[MEM][0]) / 1024.0,
                  mhz=float(num[CAP][0]))


def _read_fast(path: Path, data: bytes) -> Series | None:
    """The file read by pyarrow; None when anything is off (the string reading then names it)."""
    head, _, _ = data[:65536].partition(b"\n")
    try:
        names = [c.strip() for c in head.decode().rstrip("\r").split(";")]
    except UnicodeDecodeError:
        return None
    if any(c not in names for c in REQUIRED) or len(set(names)) != len(names):
        return None
    cols = [c for c in (TIME, CORES, CAP, UTIL, MEM, MEM_USED) if c in names]
    types = {c: (pa.string() if c == TIME else pa.float64()) for c in cols}
    try:
        table = pacsv.read_csv(pa.py_buffer(data),
                               read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                               parse_options=pacsv.ParseOptions(delimiter=";"),
                               convert_options=pacsv.ConvertOptions(include_columns=cols, column_types=types))
    except (pa.ArrowInvalid, pa.ArrowException):
        return None
    if table.num_rows == 0:
        return None
    num = {c: table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in cols if c != TIME}
    if any(not (np.isfinite(v) & (v >= 0)).all() for v in num.values()):
        return None
    clock = pc.utf8_trim_whitespace(table.column(TIME))
    try:
        clock = pc.cast(clock, pa.float64())  # epoch seconds or ms, as GWA-T-12 writes them
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # timestamps as text (Materna): timeline parses them
    try:
        t = to_seconds(clock.to_numpy(zero_copy_only=False), str(path), TIME)
    except TraceError:
        return None
    return _series(path, t, num)


def _read_strings(path: Path) -> Series:
    """The file read as strings (pandas): slower, and every bad value is named by its row and column."""
    try:
        df = pd.read_csv(path, sep=";", skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise TraceError(str(path), f"cannot be read as ';'-separated CSV ({cut(str(exc), 200)})") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise TraceError(str(path), f"column {missing[0]!r} is missing (got columns: "
                         f"{cut(', '.join(df.columns), 200)}; expected the GWA-T-12/13 layout)")
    if len(df) == 0:
        raise TraceError(str(path), "file has no rows")
    t = to_seconds(df[TIME].str.strip(), str(path), TIME)
    num = {}
    for c in (CORES, CAP, UTIL, MEM) + ((MEM_USED,) if MEM_USED in df.columns else ()):
        v = pd.to_numeric(df[c].str.strip(), errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
        if bad.size:
            raise TraceError(str(path), f"{c}: missing, negative or not a number (got {cut(repr(df[c].iloc[bad[0]]), 60)})",
                             row=int(bad[0]) + 1)
        num[c] = v
    return _series(path, t, num)


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Every VM of the folder (one per file) with its life and shape, on the scenario grid."""
    path = Path(g.trace.bitbrains)
    if not path.is_absolute():
        path = sc.base_dir / path
    if not path.exists():
        raise TraceError(str(path), "no such file or folder")
    files = files_of(path)
    files = [files[k] for k in select(len(files), g.trace, gen)]
    grid = to_grid([read_file(f) for f in files], sc, g.trace, str(path))
    return from_grid(grid, [str(path)] * len(grid.names))


register("bitbrains", read_group)
