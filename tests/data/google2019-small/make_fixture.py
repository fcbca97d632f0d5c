"""Writes this folder: a small population in Google cluster-data 2019's layout (clusterdata_trace_format_v3.proto:
InstanceEvent and InstanceUsage) as the trace is downloaded, newline-delimited JSON, gzip, in BigQuery's sharded
file names, 64-bit integers as strings and nested records as objects (resource_request, average_usage,
maximum_usage, and the usage distributions as lists). Generated (seed 19), not measured: 2.5 hours of trace
clock (µs; the window starts at 600 s), usage windows on 300 s boundaries, shorter where an instance starts or
ends, the usage rows shuffled over two files (an export has no order).

- 1001/0 was scheduled before the trace (time 0) and never ends in it; some windows use more than its request;
- 1001/1 is submitted at 700 s, scheduled at 900 s and finishes at 3000 s (its last window is 2700-3000 s);
- 2002/0 is scheduled at 1200 s, evicted at 2400 s, scheduled again at 3000 s (no windows between) and killed at
  4800 s; its request grows from 0.04 to 0.1 NCU at 3600 s (UPDATE_RUNNING);
- 2002/1 runs from 600 s with irregular windows (one of 250 s, one of 350 s) and is LOST at 6000 s;
- 3003/1 requests no CPU (0 NCU): left out by the reader, counted;
- 3003/0 has events and no usage; 9009/0 has usage and no events (join mismatches on purpose).

Run: python tests/data/google2019-small/make_fixture.py [--format json|parquet|csv|csv_] [--out DIR]
(json, the default, is what this folder holds; the other formats write the same rows as BigQuery would export
them: Parquet with structs, CSV with a header and nested fields flattened as `a.b` or, with csv_, `a_b`.)"""
from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
US = 1_000_000
SCHEDULE, EVICT, FINISH, KILL, LOST, SUBMIT, UPDATE_RUNNING = 3, 4, 6, 7, 8, 0, 10


def rows(seed: int = 19) -> tuple[list[dict], list[dict]]:
    """The events and usage rows (nested dicts, integers as Python ints)."""
    rng = np.random.default_rng(seed)
    events, usage = [], []

    def ev(t_s, typ, cid, idx, cpus, mem, machine=0):
        events.append({"time": int(t_s * US), "type": typ, "collection_id": cid, "scheduling_class": 1,
                       "missing_type": None, "collection_type": 0, "priority": 200, "alloc_collection_id": 0,
                       "instance_index": idx, "machine_id": machine, "alloc_instance_index": -1,
                       "resource_request": {"cpus": cpus, "memory": mem}, "constraint": []})

    def windows(cid, idx, edges_s, cpu_mean, machine=7):
        for a, b in zip(edges_s[:-1], edges_s[1:]):
            c = float(max(rng.normal(cpu_mean, cpu_mean / 3), 0.0))
            usage.append({"start_time": int(a * US), "end_time": int(b * US), "collection_id": cid,
                          "instance_index": idx, "machine_id": machine, "alloc_collection_id": 0,
                          "alloc_instance_index": -1, "collection_type": 0,
                          "average_usage": {"cpus": round(c, 6), "memory": round(float(rng.uniform(0.005, 0.02)), 6)},
                          "maximum_usage": {"cpus": round(c * 1.5, 6), "memory": 0.021},
                          "random_sample_usage": {"cpus": round(c * 1.1, 6)}, "assigned_memory": 0.0,
                          "page_cache_memory": 0.001, "cycles_per_instruction": 1.2,
                          "memory_accesses_per_instruction": 0.01, "sample_rate": 1.0,
                          "cpu_usage_distribution": [round(c * q, 6) for q in np.linspace(0.2, 1.4, 11)],
                          "tail_cpu_usage_distribution": [round(c * 1.3, 6)] * 9})

    end = 9600  # the trace clock's last window ends here (2.5 h of window from 600 s)
    ev(0, SUBMIT, 1001, 0, 0.05, 0.02)
    ev(0, SCHEDULE, 1001, 0, 0.05, 0.02, machine=7)
    windows(1001, 0, np.arange(600, end + 1, 300), 0.045)  # near its request: some windows above it
    ev(700, SUBMIT, 1001, 1, 0.02, 0.01)
    ev(900, SCHEDULE, 1001, 1, 0.02, 0.01, machine=8)
    ev(3000, FINISH, 1001, 1, 0.02, 0.01, machine=8)
    windows(1001, 1, np.r_[900, np.arange(1200, 2701, 300), 3000], 0.01)
    ev(1100, SUBMIT, 2002, 0, 0.04, 0.03)
    ev(1200, SCHEDULE, 2002, 0, 0.04, 0.03, machine=9)
    ev(2400, EVICT, 2002, 0, 0.04, 0.03, machine=9)
    ev(3000, SCHEDULE, 2002, 0, 0.04, 0.03, machine=10)
    ev(3600, UPDATE_RUNNING, 2002, 0, 0.1, 0.03, machine=10)
    ev(4800, KILL, 2002, 0, 0.1, 0.03, machine=10)
    windows(2002, 0, np.arange(1200, 2401, 300), 0.02)
    windows(2002, 0, np.arange(3000, 4801, 300), 0.05)
    ev(600, SCHEDULE, 2002, 1, 0.03, 0.02, machine=11)
    ev(6000, LOST, 2002, 1, 0.03, 0.02, machine=11)
    windows(2002, 1, np.r_[600, 900, 1150, 1500, np.arange(1800, 6001, 300)], 0.015)
    ev(600, SCHEDULE, 3003, 0, 0.01, 0.01, machine=12)
    ev(600, SCHEDULE, 3003, 1, 0.0, 0.01, machine=12)
    windows(3003, 1, np.arange(600, 2401, 300), 0.001)
    windows(9009, 0, np.arange(600, 1501, 300), 0.02)
    order = rng.permutation(len(usage))
    return events, [usage[i] for i in order]


INTS = {"time", "collection_id", "instance_index", "machine_id", "start_time", "end_time", "alloc_collection_id",
        "alloc_instance_index"}


def _json_line(r: dict) -> str:
    # BigQuery writes INT64 as JSON strings (a double cannot hold every 64-bit value)
    return json.dumps({k: (str(v) if k in INTS else v) for k, v in r.items()})


def _flat(r: dict, sep: str) -> dict:
    out = {}
    for k, v in r.items():
        if isinstance(v, dict):
            out.update({f"{k}{sep}{kk}": vv for kk, vv in v.items()})
        elif not isinstance(v, list):  # repeated fields cannot go to CSV
            out[k] = v
    return out


def write(folder: Path, fmt: str = "json") -> None:
    """The trace in `folder` as `fmt` (json, parquet, csv: `a.b` names, csv_: `a_b` names)."""
    folder.mkdir(parents=True, exist_ok=True)
    events, usage = rows()
    halves = {"instance_events-000000000000": events, "instance_usage-000000000000": usage[: len(usage) // 2],
              "instance_usage-000000000001": usage[len(usage) // 2:]}
    for name, part in halves.items():
        if fmt == "json":
            with gzip.open(folder / f"{name}.json.gz", "wt") as f:
                f.write("".join(_json_line(r) + "\n" for r in part))
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_pylist(part), folder / f"{name}.parquet")
        else:
            import pandas as pd
            pd.DataFrame([_flat(r, "." if fmt == "csv" else "_") for r in part]).to_csv(folder / f"{name}.csv",
                                                                                        index=False)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", default="json", choices=["json", "parquet", "csv", "csv_"])
    ap.add_argument("--out", type=Path, default=HERE)
    a = ap.parse_args()
    write(a.out, a.format)
