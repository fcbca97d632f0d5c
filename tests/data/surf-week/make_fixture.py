"""Writes a SURF-style week of batch tasks in OpenDC's current workload layout (tasks.parquet + fragments.parquet,
column types as OpenDC's Bitbrains sample: id int32, submission_time/duration int64 ms, cpu_count int32,
cpu_capacity float64 MHz, mem_capacity int64 KiB as opendc.py reads it; fragments id int32, duration int64 ms,
cpu_usage float64 MHz). GENERATED (seed 2022), not measured: no SURF trace is available offline, so the shape is
assumed (see tests/data/TRACES-PROVENANCE.md):

- 6,295 tasks (the count of the issue's one-week SURF trace) submitted over 7 days from Monday 2022-10-03 00:00 UTC
  (an arbitrary Monday): a diurnal rate (peak at 14:00, trough at 02:00, 3:1) with weekends at half the weekday rate;
  a third of the tasks come in job arrays of 5-40 tasks submitted within one minute.
- Durations log-normal, median 1 h, sigma 1.4 (mean ~2.7 h), at least 5 minutes, cut at the week's end (a one-week
  extract censors what runs on).
- Cores 1/2/4/8/16 with weights .15/.10/.15/.20/.40 (single-node jobs; 16 = a whole assumed 16-core node), at an
  assumed 2,600 MHz per core; memory 2, 4 or 6 GiB per core.
- Utilisation per 300 s fragment: a task mean from Beta(4, 2) (batch jobs keep their cores busy, mean 0.67) plus
  N(0, 0.08) noise, in 0.01..1, rounded to 1% (keeps the Parquet file small); the last fragment is shorter when the
  task ends mid-step.

    python tests/data/surf-week/make_fixture.py [OUT_FOLDER] [--tasks N]

Default OUT_FOLDER is this folder. Deterministic: the same files for the same arguments.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
WEEK_S = 7 * 86400
STEP_S = 300
T0_MS = 1664755200000  # 2022-10-03 00:00:00 UTC, a Monday
MHZ_PER_CORE = 2600.0
CORES, CORE_W = np.array([1, 2, 4, 8, 16]), np.array([.15, .10, .15, .20, .40])
GIB_PER_CORE = np.array([2, 4, 6])
KIB_PER_GIB = 1 << 20


def _arrivals(rng: np.random.Generator, n: int) -> np.ndarray:
    """n submission times (s from T0) with a diurnal, weekday-heavy rate; a third in job arrays."""
    minute = np.arange(WEEK_S // 60)
    hour = (minute / 60.0) % 24
    day = minute // 1440
    rate = (2.0 + np.cos(2 * np.pi * (hour - 14) / 24)) * np.where(day >= 5, 0.5, 1.0)
    p = rate / rate.sum()
    t = []
    while len(t) < n:
        at = (rng.choice(len(minute), p=p) * 60 + rng.uniform(0, 60))
        # an array (22.5 tasks on average) 1 time in 46: then a third of the tasks are in arrays
        size = int(rng.integers(5, 41)) if rng.random() < 1 / 46 else 1
        t.extend(at + np.sort(rng.uniform(0, 60, size)))
    return np.sort(np.minimum(np.array(t[:n]), WEEK_S - STEP_S))


def write(out: Path, n_tasks: int = 6295, seed: int = 2022) -> tuple[int, int]:
    """Write tasks.parquet and fragments.parquet into `out`; returns (tasks, fragments)."""
    rng = np.random.default_rng(seed)
    sub_s = np.floor(_arrivals(rng, n_tasks))
    dur_s = np.maximum(300.0, np.round(rng.lognormal(np.log(3600.0), 1.4, n_tasks)))
    dur_s = np.minimum(dur_s, WEEK_S - sub_s)
    cores = rng.choice(CORES, size=n_tasks, p=CORE_W)
    mem_kib = cores * rng.choice(GIB_PER_CORE, size=n_tasks) * KIB_PER_GIB
    cap = cores * MHZ_PER_CORE
    mean_u = rng.beta(4, 2, n_tasks)
    ids, durs, usage = [], [], []
    for j in range(n_tasks):
        n_full, rest = divmod(int(dur_s[j]), STEP_S)
        d = [STEP_S * 1000] * n_full + ([rest * 1000] if rest else [])
        u = np.round(np.clip(mean_u[j] + rng.normal(0, 0.08, len(d)), 0.01, 1.0), 2)
        ids.append(np.full(len(d), j, np.int32))
        durs.append(np.array(d, np.int64))
        usage.append(u * cap[j])
    out.mkdir(parents=True, exist_ok=True)
    tasks = pa.table({"id": pa.array(np.arange(n_tasks, dtype=np.int32)),
                      "submission_time": pa.array((T0_MS + sub_s * 1000).astype(np.int64)),
                      "duration": pa.array((dur_s * 1000).astype(np.int64)),
                      "cpu_count": pa.array(cores.astype(np.int32)),
                      "cpu_capacity": pa.array(cap.astype(np.float64)),
                      "mem_capacity": pa.array(mem_kib.astype(np.int64))})
    frags = pa.table({"id": pa.array(np.concatenate(ids)), "duration": pa.array(np.concatenate(durs)),
                      "cpu_usage": pa.array(np.concatenate(usage))})
    pq.write_table(tasks, out / "tasks.parquet", compression="zstd")
    pq.write_table(frags, out / "fragments.parquet", compression="zstd")
    return tasks.num_rows, frags.num_rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=HERE)
    ap.add_argument("--tasks", type=int, default=6295)
    a = ap.parse_args()
    n, f = write(a.out, a.tasks)
    print(f"{a.out}: {n:,} tasks, {f:,} fragments")
