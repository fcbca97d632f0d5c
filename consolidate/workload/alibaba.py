"""Reader for Alibaba cluster-trace-v2018 containers as the VMs (`alibaba2018: FOLDER`): `container_meta.csv`
joined with `container_usage.csv` by container id (gzip or plain CSV, no header row, as published; the folder's
`container_meta*.csv*` and `container_usage*.csv*` files):

| file | column | used as |
|---|---|---|
| container_meta | 1 `container_id` | the VM's name, the join key (a container has a row per status change; the first is used) |
| container_meta | 6 `cpu_request` | vCPUs: cpu_request / 100 (100 is one core, as the trace's schema says) |
| container_meta | 8 `mem_size` | not used: the trace normalises it to 0–100, so no size in MiB exists; memory comes from the group's VM type (shape: group) |
| container_usage | 1 `container_id` | the join key |
| container_usage | 3 `time_stamp` | sample time (s from the trace's start; the run's t = 0 is the trace's 0 unless `start` moves it) |
| container_usage | 4 `cpu_util_percent` | utilisation, read as % of the container's requested cores (an assumption: the schema gives no base) |

The other columns are read past. A container lives from its first usage sample to the end of its last (each
lasts to the next; gaps by the group's `gap`). Unmatched keys are counted in the warnings; no container with
both a meta row and usage is refused. Both files are read in chunks (joined.CHUNK_ROWS).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from consolidate.errors import TraceError
from consolidate.scenario.model import Scenario, TraceSource, VmGroup
from consolidate.workload.joined import Selected, csv_chunks, gather, has_layout, numbers, on_grid, trace_folder
from consolidate.workload.sources import GroupTraces, register, select
from consolidate.workload.timeline import Series

META_COLS = ("container_id", "machine_id", "time_stamp", "app_du", "status", "cpu_request", "cpu_limit", "mem_size")
USAGE_COLS = ("container_id", "machine_id", "time_stamp", "cpu_util_percent", "mem_util_percent", "cpi", "mem_gps",
              "mpki", "net_in", "net_out", "disk_io_percent")
CORE = 100.0  # cpu_request units per core


def files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The container_meta and container_usage files; TraceError naming the layout otherwise."""
    meta = sorted(folder.glob("container_meta*.csv*"))
    usage = sorted(folder.glob("container_usage*.csv*"))
    if not meta or not usage:
        raise TraceError(str(folder), "not an Alibaba cluster-trace-v2018 folder (expected container_meta.csv and "
                         "container_usage.csv, gzip or plain)")
    return meta, usage


def looks_like(path: Path) -> bool:
    """Whether `path` is a folder in the Alibaba 2018 layout."""
    return has_layout(path, files)


def read_series(folder: Path, src: TraceSource, gen: np.random.Generator | None) -> tuple[Selected, list[str]]:
    """The selected containers (in the meta table's order) that have usage, as Series made one at a time
    (iterate once), and the join's warnings."""
    meta, usage = files(folder)
    index: dict[str, int] = {}
    cores: list[float] = []
    for path in meta:
        rows = 0
        for chunk in csv_chunks(path, META_COLS, ["container_id", "cpu_request"], numeric=("cpu_request",)):
            req, _ = numbers(chunk, "cpu_request", path, rows)
            for cid, r in zip(chunk["container_id"].str.strip().tolist(), req.tolist()):
                if cid not in index:
                    index[cid] = len(cores)
                    cores.append(r / CORE)
            rows += len(chunk)
    if not index:
        raise TraceError(str(meta[0]), "container_meta has no rows")
    ids = list(index)
    keep = select(len(ids), src, gen) if gen is not None else np.arange(len(ids))
    got = gather(usage, USAGE_COLS, "container_id", "time_stamp", ("cpu_util_percent",), index, keep, len(ids))
    where = str(usage[0]) if len(usage) == 1 else str(folder)

    def make(pos: int, a: np.ndarray) -> Series:
        a = a[np.isfinite(a[:, 1])]  # an empty cpu_util_percent: no sample
        if np.any(a[1:, 0] == a[:-1, 0]):  # a repeated time stamp: the first row (rows are sorted by time)
            a = a[np.unique(a[:, 0], return_index=True)[1]]
        return Series(name=ids[keep[pos]], t_s=a[:, 0], util=a[:, 1] / 100.0, rows=a[:, 2].astype(np.int64),
                      where=where, vcpus=cores[keep[pos]])
    join = got.join_note()
    if not got.n_with_rows:
        got.close()
        raise TraceError(str(folder), f"container_usage and container_meta share no container ({join}); nothing to "
                         "run on (expected container_usage rows whose container_id is in container_meta)")
    return Selected(got, make), [f"{folder}: {join}"] if got.unknown_rows or got.n_with_rows < len(keep) else []

def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """The containers that have usage, each with its life and vCPUs, on the run grid."""
    folder = trace_folder(g.trace.alibaba2018, sc, "Alibaba 2018's container_meta and container_usage")
    series, warnings = read_series(folder, g.trace, gen)
    src = g.trace if g.trace.start is not None else g.trace.model_copy(update={"start": 0.0})
    return on_grid(folder, series, warnings, sc, src)

register("alibaba2018", read_group)
