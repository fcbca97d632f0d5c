"""Reader for OpenDC's workload format (`opendc: FOLDER`), both layouts.

Current (OpenDC 2.x): `tasks.parquet`, one row per task (VM): `id`, `submission_time` (epoch ms), `duration` (ms),
`cpu_count`, `cpu_capacity` (MHz, all cores), `mem_capacity` (KiB: the Bitbrains sample's values are the raw
trace's `Memory capacity provisioned [KB]`); and `fragments.parquet`, one row per usage sample, in time order per
task: `id`, `duration` (ms), `cpu_usage` (MHz). A task's fragments follow one another from its submission time.

Older: `meta.parquet`: `id`, `start_time`, `stop_time` (epoch ms), `cpu_count`, `cpu_capacity`, `mem_capacity`;
and `trace.parquet`: `id`, `timestamp` (epoch ms, the sample's end), `duration` (ms), `cpu_count`, `cpu_usage`
(MHz).

CPU utilisation = cpu_usage / cpu_capacity. Fragments are read in record batches (pyarrow), keeping only the
selected tasks, so a full-size trace never sits in memory whole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from consolidate.errors import TraceError, cut, not_a_regular_file
from consolidate.scenario.model import Scenario, VmGroup
from consolidate.workload.sources import GroupTraces, from_grid, register, select
from consolidate.workload.timeline import Series, to_grid

LAYOUTS = {"current": ("tasks.parquet", "fragments.parquet"), "older": ("meta.parquet", "trace.parquet")}
META_COLS = {"current": ("id", "submission_time", "duration", "cpu_count", "cpu_capacity", "mem_capacity"),
             "older": ("id", "start_time", "stop_time", "cpu_count", "cpu_capacity", "mem_capacity")}
SAMPLE_COLS = {"current": ("id", "duration", "cpu_usage"), "older": ("id", "timestamp", "duration", "cpu_usage")}
KIB_PER_MIB = 1024.0
BATCH_ROWS = 1 << 18


def layout_of(folder: Path) -> str:
    """Which layout a folder holds; TraceError listing the known ones otherwise."""
    for name, (meta, samples) in LAYOUTS.items():
        if (folder / meta).is_file() and (folder / samples).is_file():
            return name
    known = "; ".join(f"{name}: {a} + {b}" for name, (a, b) in LAYOUTS.items())
    raise TraceError(str(folder), f"not an OpenDC workload folder (expected one of the layouts {known})")


def _open(path: Path, cols: tuple[str, ...]) -> pq.ParquetFile:
    why = not_a_regular_file(path)
    if why is not None:
        raise TraceError(str(path), f"trace file {why}")
    with path.open("rb") as f:
        if f.read(4) != b"PAR1":
            raise TraceError(str(path), "not a Parquet file (expected b'PAR1' at the start)")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TraceError(str(path), f"cannot be read as Parquet ({cut(str(exc), 200)})") from None
    have = pf.schema_arrow.names
    missing = [c for c in cols if c not in have]
    if missing:
        raise TraceError(str(path), f"column {missing[0]!r} is missing (got columns: {', '.join(have)}; expected "
                         f"{', '.join(cols)})")
    return pf


def read_series(folder: Path, src, gen: np.random.Generator | None) -> list[Series]:
    """The folder's tasks as Series (after the source's sample and limit)."""
    layout = layout_of(folder)
    meta_name, samples_name = LAYOUTS[layout]
    meta_path, samples_path = folder / meta_name, folder / samples_name
    mcols = META_COLS[layout]
    meta = _open(meta_path, mcols).read(columns=list(mcols)).to_pandas()
    for c in mcols[1:]:
        bad = np.flatnonzero(~np.isfinite(meta[c].to_numpy(np.float64)) | (meta[c].to_numpy(np.float64) < 0))
        if bad.size:
            raise TraceError(str(meta_path), f"{c}: missing or negative (got {meta[c].iloc[bad[0]]!r})",
                             row=int(bad[0]) + 1)
    if meta["id"].duplicated().any():
        i = int(np.flatnonzero(meta["id"].duplicated().to_numpy())[0])
        raise TraceError(str(meta_path), f"id: task named twice (got {meta['id'].iloc[i]!r})", row=i + 1)
    keep = select(len(meta), src, gen) if gen is not None else np.arange(len(meta))
    meta = meta.iloc[keep].reset_index(drop=True)
    wanted = pd.Index(meta["id"])  # position = the task's index in meta; a hash lookup per batch, in C
    scols = SAMPLE_COLS[layout]
    pf = _open(samples_path, scols)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(wanted))]
    rows_seen = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(scols)):
        b = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in scols}
        ids = b["id"]
        idx = wanted.get_indexer(ids).astype(np.int64)
        for c in scols[1:]:
            v = b[c].astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
            if bad.size:
                raise TraceError(str(samples_path), f"{c}: missing or negative (got {v[bad[0]]!r})",
                                 row=rows_seen + int(bad[0]) + 1)
        rowno = np.arange(rows_seen + 1, rows_seen + len(ids) + 1)
        rows_seen += len(ids)
        sel = idx >= 0
        if not sel.any():
            continue
        order = np.argsort(idx[sel], kind="stable")
        cols = np.column_stack([idx[sel]] + [b[c].astype(np.float64)[sel] for c in scols[1:]] + [rowno[sel]])[order]
        cuts = np.flatnonzero(np.diff(cols[:, 0])) + 1
        for chunk in np.split(cols, cuts):
            parts[int(chunk[0, 0])].append(chunk[:, 1:])
    out = []
    ids = meta["id"].tolist()
    caps, cores = meta["cpu_capacity"].to_numpy(np.float64), meta["cpu_count"].to_numpy(np.float64)
    mems = meta["mem_capacity"].to_numpy(np.float64)
    subs = meta[mcols[1]].to_numpy(np.float64)
    for j in range(len(meta)):
        if not parts[j]:
            continue
        a = np.vstack(parts[j]) if len(parts[j]) > 1 else parts[j][0]
        cap = float(caps[j])
        if layout == "current":
            dur = a[:, 0] / 1000.0
            t = subs[j] / 1000.0 + np.concatenate([[0.0], np.cumsum(dur)[:-1]])
            usage, rows = a[:, 1], a[:, 2]
        else:
            dur = a[:, 1] / 1000.0
            t = a[:, 0] / 1000.0 - dur  # the timestamp ends the sample
            usage, rows = a[:, 2], a[:, 3]
        util = usage / cap if cap > 0 else np.zeros_like(usage)
        out.append(Series(name=str(ids[j]), t_s=t, util=util, dur_s=dur, rows=rows.astype(np.int64),
                          where=str(samples_path), vcpus=float(cores[j]), memory_mb=float(mems[j]) / KIB_PER_MIB,
                          mhz=cap))
    if not out:
        raise TraceError(str(samples_path), f"no samples for any of the {len(meta)} tasks of {meta_path.name} "
                         "(expected fragments whose id is a task's id)")
    return out


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Every task (VM) of the folder with its life and shape, on the scenario grid."""
    folder = Path(g.trace.opendc)
    if not folder.is_absolute():
        folder = sc.base_dir / folder
    if not folder.is_dir():
        raise TraceError(str(folder), "expected a folder holding an OpenDC workload")
    grid = to_grid(read_series(folder, g.trace, gen), sc, g.trace, str(folder))
    return from_grid(grid, [f"{folder}/{n}" for n in grid.names])


register("opendc", read_group)
