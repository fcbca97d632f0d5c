"""Reader for Google cluster-data 2019 (`google2019: FOLDER`): `instance_events` joined with `instance_usage`,
each instance (a task or an alloc instance, keyed by `collection_id` + `instance_index`) as a VM.

The schema is google/cluster-data's `clusterdata_trace_format_v3.proto` (messages InstanceEvent and
InstanceUsage), described in the "Google cluster-usage traces v3" document. The trace is published in BigQuery
and as JSON files (one bucket per cell, `clusterdata_2019_<cell>`); the folder holds its `instance_events*` and
`instance_usage*` files (at the top or in `instance_events/` and `instance_usage/`), each in one of the ways a
table leaves BigQuery:

- newline-delimited JSON (`.json`, `.json.gz`; nested `resource_request: {cpus, memory}`, `average_usage: {...}`;
  64-bit integers as strings or numbers, as BigQuery writes them);
- Parquet (`.parquet`; the same nesting as structs);
- CSV with a header row (`.csv`, `.csv.gz`). BigQuery refuses to export nested records to CSV, so a CSV comes
  from a query that flattens them: a nested field is read from `average_usage.cpus` (pandas' json_normalize and
  pyarrow's flatten name it so) or `average_usage_cpus` (a BigQuery alias cannot hold a dot).

| table | field | used as |
|---|---|---|
| both | `collection_id`, `instance_index` | the instance, the join key; its name is `<collection_id>/<instance_index>` |
| instance_events | `time` (µs) | with `type`: the first SCHEDULE (3) starts the VM's life, the last EVICT (4), FAIL (5), FINISH (6), KILL (7) or LOST (8) ends it; type names are read too |
| instance_events | `resource_request.cpus`, `.memory` | the request (the event with the latest time that carries one): utilisation is usage / request; the shape is request x `ncu_vcpus` vCPUs and x `nmu_mib` MiB |
| instance_usage | `start_time`, `end_time` (µs) | the usage window (typically 300 s, shorter where the instance started or ended): a sample with its own duration |
| instance_usage | `average_usage.cpus` | CPU used, NCU: / the request's cpus = utilisation of the VM |
| instance_usage | `average_usage.memory` | memory used (normalised): x `nmu_mib` = `mem_used_bytes`, when `nmu_mib` is given |

Times are microseconds since the trace's 0, which lies 600 s before the trace window starts (the v3 document's
"Time and timestamps"); the run's t = 0 is the window's start (600 s) unless `start` (in seconds) moves it. A time
of 0 means "before the trace window" and 2^63 - 1 "after it": such a SCHEDULE starts the life at the trace's 0, such
an end leaves the life to end with the last usage window. An instance with no SCHEDULE (or no end event) in the
files lives from its first usage window (to the end of its last). CPU and memory are normalised in the trace
("Normalized GCUs (NCUs)", "Normalized RAM bytes": 1.0 is the largest machine's capacity), so no vCPU count
exists in it: `ncu_vcpus` states how many vCPUs one NCU stands for (the cores of the cell's largest machine) and
`nmu_mib` how many MiB 1.0 of memory does; neither has a default. `shape: group` needs neither; `as-is` and
`nearest` need `ncu_vcpus`. Between usage windows an instance is not measured (waiting, evicted): the default gap
policy is `zero` here, not `hold`. Instances without a positive CPU request have no utilisation and are left out,
counted in the warnings; unmatched keys are counted as for azure. Both tables are read in chunks.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from consolidate.errors import TraceError, cut
from consolidate.scenario.model import Scenario, TraceSource, VmGroup
from consolidate.workload import inspect as inspect_
from consolidate.workload.joined import (BLOCK_BYTES, CHUNK_ROWS, Selected, _stream, gather, on_grid, tables,
                                         trace_folder)
from consolidate.workload.sources import GroupTraces, register, select
from consolidate.workload.timeline import Series

US = 1e6  # trace clock units per second
WINDOW_START_S = 600.0  # the trace's 0 is this long before the trace window
AFTER_END_US = 2**62  # times from here up are the "after the trace" sentinel 2^63 - 1 (as float64)
EVENT_TYPES = {"SUBMIT": 0, "QUEUE": 1, "ENABLE": 2, "SCHEDULE": 3, "EVICT": 4, "FAIL": 5, "FINISH": 6, "KILL": 7,
               "LOST": 8, "UPDATE_PENDING": 9, "UPDATE_RUNNING": 10}
SCHEDULE, ENDS = 3, (4, 5, 6, 7, 8)
KEY = ("collection_id", "instance_index")
EVENT_FIELDS = ("time", "type", *KEY, "resource_request.cpus", "resource_request.memory")
USAGE_FIELDS = ("start_time", "end_time", *KEY, "average_usage.cpus", "average_usage.memory")
MIB = 1 << 20
SUFFIXES = (".json", ".json.gz", ".parquet", ".csv", ".csv.gz")


def _table_files(folder: Path, table: str) -> list[Path]:
    found = set(folder.glob(f"{table}*")) | set(folder.glob(f"{table}/*"))
    return sorted((p for p in found if p.is_file() and p.name.endswith(SUFFIXES)), key=lambda p: (len(p.name), p.name))


def files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The instance_events and instance_usage files; TraceError naming the layout otherwise."""
    events, usage = _table_files(folder, "instance_events"), _table_files(folder, "instance_usage")
    if not events or not usage:
        raise TraceError(str(folder), "not a Google cluster-data 2019 folder (expected instance_events* and "
                         "instance_usage* files, .json[.gz], .parquet or .csv[.gz] with a header, at the top or in "
                         "instance_events/ and instance_usage/)")
    return events, usage


def looks_like(path: Path) -> bool:
    """Whether `path` is a folder in the Google 2019 layout."""
    try:
        return path.is_dir() and bool(files(path))
    except TraceError:
        return False


def _column(t: pa.Table, field: str, path: Path) -> pa.ChunkedArray:
    """`field` (dotted for a nested one) from a flattened table, also under its CSV alias `a_b`."""
    for name in (field, field.replace(".", "_")):
        if name in t.column_names:
            return t.column(name)
    raise TraceError(str(path), f"{field}: no such field (expected the v3 schema's {field}; a CSV names a nested "
                     f"field {field} or {field.replace('.', '_')}; found {cut(', '.join(t.column_names), 300)})")


def _header(path: Path) -> list[str]:
    stream, _ = _stream(path)
    with stream as f:
        line = f.read(1 << 20).split(b"\n", 1)[0]
    return [c.strip().strip('"') for c in line.decode("utf-8", "replace").rstrip("\r").split(",")]


def _json_schema(path: Path, fields: tuple[str, ...]) -> pa.Schema:
    """The Arrow schema of `fields` in a JSON file: a field the first row writes as a string is read as one (64-bit
    integers, event type names), else as a number (int64 for the keys, float64 otherwise)."""
    stream, _ = _stream(path)
    with stream as f:
        line = f.read(1 << 20).split(b"\n", 1)[0]
    try:
        first = json.loads(line)
    except ValueError as exc:
        raise TraceError(str(path), f"row 1 is not JSON ({cut(str(exc), 120)}; expected one JSON object per line)"
                         ) from None
    if not isinstance(first, dict):
        raise TraceError(str(path), "row 1 is not a JSON object (expected one object per line)")
    tops: dict[str, list] = {}
    for f in fields:
        top, _, leaf = f.partition(".")
        v = first.get(top)
        if leaf:
            v = v.get(leaf) if isinstance(v, dict) else None
        typ = pa.string() if isinstance(v, str) else pa.int64() if f in KEY else pa.float64()
        tops.setdefault(top, []).append((leaf, typ) if leaf else typ)
    return pa.schema([(top, pa.struct(spec) if isinstance(spec[0], tuple) else spec[0]) for top, spec in tops.items()])


def _tables(path: Path, fields: tuple[str, ...], typed: bool = True):
    """The file's rows in chunks as flattened pyarrow Tables (nested fields named `a.b`; a CSV's numbers typed
    unless `typed` is False)."""
    name = path.name
    try:
        if name.endswith(".parquet"):
            pf = pq.ParquetFile(path)
            names = {f.split(".")[0] for f in fields} | {f.replace(".", "_") for f in fields}
            top = [c for c in pf.schema_arrow.names if c in names]
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=top):
                yield pa.Table.from_batches([batch]).flatten()
            return
        stream, _ = _stream(path)
        if ".json" in name:
            # only our fields, typed as the first row writes them: Arrow infers types per block, and a field that
            # is null in one block and a number in the next would stop it
            opts = pajson.ParseOptions(explicit_schema=_json_schema(path, fields), unexpected_field_behavior="ignore")
            reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=BLOCK_BYTES),
                                      parse_options=opts)
        else:
            names = set(fields) | {f.replace(".", "_") for f in fields}
            want = [c for c in _header(path) if c in names]
            # numbers parsed by Arrow; a cell it refuses sends the file to the string scan (_find_bad) for its row
            types = {c: (pa.string() if c == "type" or not typed else pa.int64() if c in KEY else pa.float64())
                     for c in want}
            reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
                                    convert_options=pacsv.ConvertOptions(include_columns=want, column_types=types))
        for table in tables(reader, CHUNK_ROWS):
            yield table.flatten()
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        if typed and name.endswith((".csv", ".csv.gz")):
            _find_bad(path, fields)
        raise TraceError(str(path), f"cannot be read as the v3 trace's JSON, Parquet or CSV ({cut(str(exc), 200)})"
                         ) from None


def _find_bad(path: Path, fields: tuple[str, ...]) -> None:
    """Scan a CSV as strings and raise the TraceError naming the first cell that is not a number."""
    rows = 0
    for t in _tables(path, fields, typed=False):
        for f in fields:
            if f != "type" and (f in t.column_names or f.replace(".", "_") in t.column_names):
                _numbers(t, f, path, rows, integer=f in KEY, missing_ok=True)
        rows += t.num_rows


def _numbers(t: pa.Table, field: str, path: Path, row0: int, integer: bool = False,
             missing_ok: bool = False) -> np.ndarray:
    """A field as float64 (int64 with `integer`; strings of numbers are read too, as BigQuery writes 64-bit
    integers in JSON); TraceError naming the first bad row and the field."""
    col = _column(t, field, path)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.utf8_trim_whitespace(col)
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)  # an empty cell is missing
    try:
        v = pc.cast(col, pa.int64() if integer else pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        s = pd.Series(col.to_pylist(), dtype=object)
        bad = np.flatnonzero(pd.to_numeric(s, errors="coerce").isna().to_numpy() & s.notna().to_numpy())
        i = int(bad[0]) if bad.size else 0
        raise TraceError(str(path), f"{field}: not a number (got {cut(repr(s.iloc[i]), 60)})", row=row0 + i + 1) \
            from None
    if v.null_count and (integer or not missing_ok):
        i = int(np.flatnonzero(v.is_null().to_numpy(zero_copy_only=False))[0])
        raise TraceError(str(path), f"{field}: missing (expected a number)", row=row0 + i + 1)
    a = v.to_numpy(zero_copy_only=False)
    neg = np.flatnonzero(a < 0) if not integer else np.zeros(0, dtype=np.int64)
    if neg.size:
        raise TraceError(str(path), f"{field}: negative (got {a[neg[0]]:g}, expected a number at least 0)",
                         row=row0 + int(neg[0]) + 1)
    return a


def _types(t: pa.Table, path: Path, row0: int) -> np.ndarray:
    """Event types as codes: numbers, or the proto's names (SCHEDULE, FINISH, ...)."""
    col = _column(t, "type", path)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.utf8_trim_whitespace(col)
        names = pc.index_in(col, value_set=pa.array(list(EVENT_TYPES)))  # the names are in code order
        try:
            nums = pc.cast(col, pa.int64(), safe=False)
        except pa.ArrowInvalid:
            nums = pa.nulls(len(col), pa.int64())
        v = pc.coalesce(names.cast(pa.int64()), nums).to_numpy(zero_copy_only=False)
    else:
        v = col.to_numpy(zero_copy_only=False)
    v = np.asarray(v, dtype=np.float64)
    bad = ~np.isin(v, np.arange(11))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TraceError(str(path), f"type: not an event type (got {cut(repr(col[i].as_py()), 40)}, expected 0-10 "
                         f"or one of {', '.join(EVENT_TYPES)})", row=row0 + i + 1)
    return v.astype(np.int64)


def instances(events: list[Path]) -> pd.DataFrame:
    """One row per instance (sorted by collection_id, instance_index): first SCHEDULE and last end event (µs, NaN
    where none) and the latest request (cpus, memory; NaN where none)."""
    parts = []
    for path in events:
        rows = 0
        for t in _tables(path, EVENT_FIELDS):
            n = t.num_rows
            cid = _numbers(t, "collection_id", path, rows, integer=True)
            idx = _numbers(t, "instance_index", path, rows, integer=True)
            time = _numbers(t, "time", path, rows)
            typ = _types(t, path, rows)
            cpus = _numbers(t, "resource_request.cpus", path, rows, missing_ok=True)
            mem = _numbers(t, "resource_request.memory", path, rows, missing_ok=True)
            d = pd.DataFrame({"cid": cid, "idx": idx,
                              "sched": np.where(typ == SCHEDULE, time, np.nan),
                              "end": np.where(np.isin(typ, ENDS), time, np.nan),
                              "req_t": np.where(np.isfinite(cpus), time, np.nan), "cpus": cpus, "memory": mem})
            parts.append(_fold(d))
            if len(parts) > 8:  # keep the folded table, not every chunk's
                parts = [_fold(pd.concat(parts, ignore_index=True))]
            rows += n
    if not parts:
        raise TraceError(str(events[0]), "instance_events has no rows")
    return _fold(pd.concat(parts, ignore_index=True))


def _fold(d: pd.DataFrame) -> pd.DataFrame:
    """Rows of the same instance folded into one: earliest SCHEDULE, latest end, the latest request."""
    d = d.sort_values(["cid", "idx", "req_t"], kind="stable", na_position="first")
    g = d.groupby(["cid", "idx"], sort=True)
    out = g.agg(sched=("sched", "min"), end=("end", "max"), req_t=("req_t", "max"))
    last = g.tail(1).set_index(["cid", "idx"])  # the latest time carrying a request sorts last (NaN first)
    out["cpus"] = last["cpus"]
    out["memory"] = last["memory"]
    return out.reset_index()


def read_series(folder: Path, src: TraceSource, gen: np.random.Generator | None) -> tuple[Selected, list[str]]:
    """The selected instances (in (collection_id, instance_index) order, after `sample` and `limit`) that have a
    CPU request and usage windows, as Series made one at a time (iterate once; seconds on the trace's clock), and
    the warnings of the join."""
    events, usage = files(folder)
    inst = instances(events)
    # an instance without a CPU request stays in the join (its usage rows are not "unknown") but is not selected
    requested = np.flatnonzero(inst["cpus"].to_numpy() > 0)
    no_request = len(inst) - len(requested)
    if not len(requested):
        raise TraceError(str(events[0]), f"no instance has a positive resource_request.cpus ({no_request:,} "
                         "instances without one); utilisation is usage / request, so nothing to run on")
    mi = pd.MultiIndex.from_arrays([inst["cid"].to_numpy(), inst["idx"].to_numpy()])
    keep = requested[select(len(requested), src, gen) if gen is not None else np.arange(len(requested))]

    def chunks(path: Path):
        rows = 0
        for t in _tables(path, USAGE_FIELDS):
            d = {"cid": _numbers(t, "collection_id", path, rows, integer=True),
                 "idx": _numbers(t, "instance_index", path, rows, integer=True),
                 "start_time": _numbers(t, "start_time", path, rows),
                 "end_time": _numbers(t, "end_time", path, rows),
                 "cpus": _numbers(t, "average_usage.cpus", path, rows, missing_ok=True),
                 "memory": _numbers(t, "average_usage.memory", path, rows, missing_ok=True)}
            back = np.flatnonzero(d["end_time"] < d["start_time"])
            if back.size:
                raise TraceError(str(path), f"end_time before start_time (got {d['end_time'][back[0]]:.0f} < "
                                 f"{d['start_time'][back[0]]:.0f} µs)", row=rows + int(back[0]) + 1)
            rows += t.num_rows
            yield d

    def locate(d: dict):
        jj = mi.get_indexer(pd.MultiIndex.from_arrays([d["cid"], d["idx"]]))
        return jj, lambda m: [f"{c}/{i}" for c, i in zip(d["cid"][m], d["idx"][m])]

    got = gather(usage, (), "", "start_time", ("end_time", "cpus", "memory"), {}, keep, len(inst),
                 chunks=chunks, locate=locate)
    where = str(usage[0]) if len(usage) == 1 else str(folder / "instance_usage")
    cid, idx = inst["cid"].to_numpy(), inst["idx"].to_numpy()
    sched, end = inst["sched"].to_numpy() / US, inst["end"].to_numpy() / US
    req_c, req_m = inst["cpus"].to_numpy(), inst["memory"].to_numpy()
    ncu, nmu = src.ncu_vcpus, src.nmu_mib

    def make(pos: int, a: np.ndarray) -> Series | None:
        j = keep[pos]
        a = a[np.isfinite(a[:, 2]) & (a[:, 1] > a[:, 0])]  # no CPU figure, or an empty window: no sample
        _, first = np.unique(a[:, 0], return_index=True)  # a window repeated at one start: the first row
        a = a[first]
        if not len(a):
            return None
        t0, t1 = a[:, 0] / US, a[:, 1] / US
        life0 = sched[j] if np.isfinite(sched[j]) else t0[0]
        life1 = end[j] if np.isfinite(end[j]) and end[j] * US < AFTER_END_US and end[j] > life0 else t1[-1]
        extra = {"mem_used_bytes": a[:, 3] * nmu * MIB} if nmu is not None else {}
        return Series(name=f"{cid[j]}/{idx[j]}", t_s=t0, util=a[:, 2] / req_c[j], dur_s=t1 - t0, extra=extra,
                      rows=a[:, 4].astype(np.int64), where=where,
                      vcpus=req_c[j] * ncu if ncu is not None else np.nan,
                      memory_mb=req_m[j] * nmu if nmu is not None and np.isfinite(req_m[j]) else np.nan,
                      life_s=(float(min(life0, t0[0])), float(max(life1, t0[0]))))
    join = got.join_note()
    if not got.n_with_rows:
        got.close()
        raise TraceError(str(folder), f"instance_usage and instance_events share no instance ({join}); nothing to "
                         "run on (expected instance_usage rows whose collection_id and instance_index are in "
                         "instance_events)")
    warnings = [f"{folder}: {join}"] if got.unknown_rows or got.n_with_rows < len(keep) else []
    if no_request:
        warnings.append(f"{folder}: {no_request:,} instances without a positive resource_request.cpus left out "
                        "(utilisation is usage / request)")
    return Selected(got, make), warnings


def _source(src: TraceSource) -> TraceSource:
    """The group's source with this reader's defaults: t = 0 at the trace window's start, gap zero."""
    upd = {}
    if src.start is None:
        upd["start"] = WINDOW_START_S
    if "gap" not in src.model_fields_set:
        upd["gap"] = "zero"
    return src.model_copy(update=upd) if upd else src


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """The instances with a request and usage, each with its life and (given ncu_vcpus/nmu_mib) its shape, on the
    run grid."""
    folder = trace_folder(g.trace.google2019, sc, "Google 2019's instance_events and instance_usage")
    if g.shape != "group" and g.trace.ncu_vcpus is None:
        raise TraceError(str(folder), f"shape {g.shape if isinstance(g.shape, str) else 'table'} needs the VMs' "
                         "vCPUs, and the trace gives CPU in normalised units (NCU): set the trace's ncu_vcpus (the "
                         "vCPUs one NCU stands for: the cores of the cell's largest machine), or shape: group")
    src = _source(g.trace)
    series, warnings = read_series(folder, src, gen)
    return on_grid(folder, series, warnings, sc, src)


register("google2019", read_group)
inspect_.register("google2019", looks_like, lambda p: read_series(p, TraceSource(google2019=str(p)), None))
