"""Reader for the Azure Public Dataset V1 and V2 (`azure: FOLDER`): the VM table joined with the CPU readings.

The folder holds `vmtable.csv.gz` and `vm_cpu_readings-file-*-of-*.csv.gz` (at its top, or in `vmtable/` and
`vm_cpu_readings/` subfolders, as OpenDC keeps them); gzip or plain CSV, no header row, as published:

| file | column | used as |
|---|---|---|
| vmtable | 1 `vmid` | the VM's name, the join key |
| vmtable | 4 `vmcreated`, 5 `vmdeleted` | its life: from created to deleted + one reading (300 s: `vmdeleted` is the start of the last 5-minute slot), seconds on the trace's clock (0 = the trace's start) |
| vmtable | 10 `vmcorecount` | vCPUs (a bucket; `>24` is read as 24 and counted in the warnings) |
| vmtable | 11 `vmmemory` | memory in GB (a bucket; × 1024 = MiB; `>64` is read as 64 and counted) |
| vm_cpu_readings | 1 `timestamp` | sample time (s on the trace's clock, every 300 s) |
| vm_cpu_readings | 2 `vmid` | the join key |
| vm_cpu_readings | 5 `avgcpu` | utilisation (% of the VM's cores, the 5-minute average) |

Columns 2–3 and 6–9 of the VM table and `mincpu`/`maxcpu` are read past. The run's t = 0 is the trace's 0 unless
`start` says otherwise. Readings whose VM the table does not list, and listed VMs with no reading, are counted in
the warnings; if no VM has both, the reader refuses to run on nothing. Both files are read in chunks (joined.CHUNK_ROWS)
and only the selected VMs' readings are kept, parked per range of VMs (joined.gather) and put on the run grid one
VM at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from consolidate.errors import TraceError, cut
from consolidate.scenario.model import Scenario, TraceSource, VmGroup
from consolidate.workload.sources import GroupTraces, register, select
from consolidate.workload.joined import Selected, csv_chunks, gather, has_layout, numbers, on_grid, trace_folder
from consolidate.workload.timeline import Series

VMTABLE_COLS = ("vmid", "subscriptionid", "deploymentid", "vmcreated", "vmdeleted", "maxcpu", "avgcpu", "p95maxcpu",
                "vmcategory", "vmcorecount", "vmmemory")
READING_COLS = ("timestamp", "vmid", "mincpu", "maxcpu", "avgcpu")
READING_S = 300.0  # the published 5-minute step: vmdeleted is the start of the VM's last slot
MIB_PER_GB = 1024.0


def files(folder: Path) -> tuple[Path, list[Path]]:
    """The VM table and the readings files (sorted by their number); TraceError naming what is missing."""
    def find(pattern: str) -> list[Path]:
        return sorted(set(folder.glob(pattern)) | set(folder.glob(f"*/{pattern}")),
                      key=lambda p: (len(p.name), p.name))
    tables = find("vmtable*.csv*")
    readings = find("vm_cpu_readings*.csv*")
    if not tables or not readings:
        raise TraceError(str(folder), "not an Azure Public Dataset folder (expected vmtable.csv.gz and "
                         "vm_cpu_readings-file-*-of-*.csv.gz, at the top or in vmtable/ and vm_cpu_readings/)")
    return tables[0], readings


def looks_like(path: Path) -> bool:
    """Whether `path` is a folder in the Azure layout."""
    return has_layout(path, files)


def read_series(folder: Path, src: TraceSource, gen: np.random.Generator | None) -> tuple[Selected, list[str]]:
    """The selected VMs (after `sample` and `limit`, in the table's order) that have readings, as Series made one
    at a time (iterate once), and the warnings of the join. TraceError if no VM of the table has a reading."""
    table, readings = files(folder)
    ids, life, shape, capped, rows = [], [], [], 0, 0
    for chunk in csv_chunks(table, VMTABLE_COLS, ["vmid", "vmcreated", "vmdeleted", "vmcorecount", "vmmemory"],
                            numeric=("vmcreated", "vmdeleted")):
        created, _ = numbers(chunk, "vmcreated", table, rows)
        deleted, _ = numbers(chunk, "vmdeleted", table, rows)
        cores, c1 = numbers(chunk, "vmcorecount", table, rows, bucket=True)
        mem, c2 = numbers(chunk, "vmmemory", table, rows, bucket=True)
        back = np.flatnonzero(deleted < created)
        if back.size:
            raise TraceError(str(table), f"vmdeleted before vmcreated (got {deleted[back[0]]:g} < {created[back[0]]:g})",
                             row=rows + int(back[0]) + 1)
        ids.extend(chunk["vmid"].str.strip().tolist())
        life.append(np.column_stack([created, deleted + READING_S]))
        shape.append(np.column_stack([cores, mem * MIB_PER_GB]))
        capped += c1 + c2
        rows += len(chunk)
    if not ids:
        raise TraceError(str(table), "the VM table has no rows")
    index = {v: j for j, v in enumerate(ids)}
    if len(index) < len(ids):
        dup = next(j for j, v in enumerate(ids) if index[v] != j)
        raise TraceError(str(table), f"vmid: VM listed twice (got {cut(ids[dup], 40)!r})", row=index[ids[dup]] + 1)
    life_a, shape_a = np.vstack(life), np.vstack(shape)
    keep = select(len(ids), src, gen) if gen is not None else np.arange(len(ids))
    got = gather(readings, READING_COLS, "vmid", "timestamp", ("avgcpu",), index, keep, len(ids))
    where = str(readings[0]) if len(readings) == 1 else str(folder / "vm_cpu_readings")

    def make(pos: int, a: np.ndarray) -> Series:
        j = keep[pos]
        return Series(name=ids[j], t_s=a[:, 0], util=a[:, 1] / 100.0, rows=a[:, 2].astype(np.int64), where=where,
                      vcpus=float(shape_a[j, 0]), memory_mb=float(shape_a[j, 1]),
                      life_s=(float(life_a[j, 0]), float(life_a[j, 1])))
    join = got.join_note()
    if not got.n_with_rows:
        got.close()
        raise TraceError(str(folder), f"the readings and the VM table share no VM ({join}); nothing to run on "
                         "(expected vm_cpu_readings rows whose vmid is in vmtable)")
    warnings = [f"{folder}: {join}"] if got.unknown_rows or got.n_with_rows < len(keep) else []
    if capped:
        warnings.append(f"{folder}: {capped} open-ended shape buckets (>N) read as N")
    return Selected(got, make), warnings


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """The table's VMs that have readings, each with its life (created to deleted) and shape, on the run grid."""
    folder = trace_folder(g.trace.azure, sc, "the Azure Public Dataset's vmtable and vm_cpu_readings files")
    series, warnings = read_series(folder, g.trace, gen)
    # the trace's clock starts at 0, the start of the published month: keep it unless `start` moves it
    src = g.trace if g.trace.start is not None else g.trace.model_copy(update={"start": 0.0})
    return on_grid(folder, series, warnings, sc, src)

register("azure", read_group)
