"""Run a partitioned scenario's partitions on a local process pool or a Dask cluster, then merge them.

Each partition runs as its own scenario (api.partition_scenarios) in a worker, the same code `api.run` runs in
turn in one process; the parent merges the Results in the scenario's partition order
(results/partitions.py), so the frames and the summary are the same bits with 1, 2 or N workers, local or on
a cluster. The pool is the sweeps' (sweep/worker.py: Ctrl-C is the parent's, workers die with it).

A worker reads the partition's traces itself, by the scenario's paths resolved against its folder: every
worker must reach them at the same absolute path (docs/partitions.md says what a cluster needs).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from consolidate import api, errors
from consolidate.errors import ConsolidateError, Problem, ResourceError
from consolidate.results.frames import Results
from consolidate.results.partitions import merge
from consolidate.scenario.model import Scenario
from consolidate.sweep.run import _terminate
from consolidate.sweep.worker import init_worker

OnPart = Callable[[str, int, int, float], None]  # (partition, finished so far, partitions, its wall s)


def run_part(sub: Scenario, run_id: str):
    """Run one partition's scenario; return its Results, or ('error', class name, problems) for an error a user
    can act on (a ConsolidateError does not survive pickling with its problems)."""
    try:
        res = api.run(sub, run_id=run_id)
        # a frame a big run spooled to a file is read here: the file is this worker's and ends with its Results
        res.vm_intervals  # noqa: B018
        return res
    except ConsolidateError as exc:
        return ("error", type(exc).__name__, [(p.file, p.path, p.message) for p in exc.problems])


def _result(name: str, value) -> Results:
    if isinstance(value, tuple) and value and value[0] == "error":
        cls = getattr(errors, value[1], ConsolidateError)
        raise cls([Problem(*p) for p in value[2]])
    return value


def run(source: str | Path | dict | Scenario | None = None, *, workers: int | None = None,
        scheduler: str | None = None, seed: int | None = None, policy: str | None = None,
        run_id: str | None = None, on_part: OnPart | None = None) -> Results:
    """Run a scenario with its partitions on `workers` local processes (default: one per partition, at most the
    CPU count) or on the Dask scheduler at `scheduler` (e.g. tcp://10.0.0.5:8786). A scenario without
    partitions, or `workers=1` without a scheduler, runs in this process (api.run). `on_part(name, finished,
    total, wall_s)` is called as each partition finishes. Raises what api.run raises."""
    t0 = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sc = api.load_scenario(source, seed=seed, policy=policy)
    run_id = run_id or api.make_run_id(sc)
    subs = api.partition_scenarios(sc)
    if not subs or (scheduler is None and workers == 1):
        return api.run(sc, run_id=run_id)
    names = [n for n, _ in subs]
    done: dict[str, Results] = {}

    def finished(name: str, value) -> None:
        done[name] = _result(name, value)
        if on_part is not None:
            on_part(name, len(done), len(subs), float(done[name].summary["wall_s"].iloc[0]))

    if scheduler:
        from distributed import Client, as_completed as dask_completed  # optional at import: only with a cluster

        with Client(scheduler) as client:
            futures = {client.submit(run_part, sub, run_id, key=f"consolidate-{run_id}-{name}", pure=False): name
                       for name, sub in subs}
            try:
                for fut in dask_completed(list(futures)):
                    finished(futures[fut], fut.result())
            except BaseException:
                client.cancel(list(futures))
                raise
    else:
        n = min(workers or os.cpu_count() or 1, len(subs))
        pool = ProcessPoolExecutor(max_workers=n, initializer=init_worker, initargs=(os.getpid(),))
        try:
            futures = {pool.submit(run_part, sub, run_id): name for name, sub in subs}
            for fut in as_completed(futures):
                try:
                    value = fut.result()
                except BrokenProcessPool:  # a worker was killed (out of memory, or by hand)
                    raise ResourceError([Problem(sc.file, "", f"the worker running partition {futures[fut]!r} "
                                                 "died (out of memory? expected fewer --workers)")]) from None
                finished(futures[fut], value)
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)
    res = merge(sc, [done[n] for n in names], run_id, time.perf_counter() - t0)
    res.started_at = started_at
    return res
