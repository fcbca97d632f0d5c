"""Run a partitioned scenario's partitions on a local process pool or a Dask cluster, then merge them.

Each partition runs as its own scenario (api.partition_scenarios) in a worker, the same code `api.run` runs in
turn in one process; the parent merges the Results in the scenario's partition order
(results/partitions.py), so the frames and the summary are the same bits with 1, 2 or N workers, local or on
a cluster. The pool is the sweeps' (sweep/worker.py: Ctrl-C is the parent's, workers die with it).

A worker reads the partition's traces itself, by the scenario's paths resolved against its folder: every
worker must reach them at the same absolute path (docs/partitions.md says what a cluster needs), or, with
`ship_traces`, the parent sends each partition its trace files with the task (a tar archive, at most
SHIP_LIMIT_BYTES a partition) and the worker runs on a private copy laid out as the scenario's folder.
"""
from __future__ import annotations

import io
import os
import tarfile
import tempfile
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
from consolidate.workload.remote import trace_paths
from consolidate.sweep.run import _terminate
from consolidate.sweep.worker import init_worker

OnPart = Callable[[str, int, int, float], None]  # (partition, finished so far, partitions, its wall s)
SHIP_LIMIT_BYTES = 512 * 2**20  # traces shipped with one partition's task, at most: above, a shared filesystem
_ABS = "_abs"  # where a shipped trace named by an absolute path (or one leaving the scenario's folder) goes


def _arcname(value: str, sc: Scenario) -> str:
    """Where a trace path goes in the shipped archive: as written when it stays in the scenario's folder."""
    p = Path(value)
    return value if not p.is_absolute() and ".." not in p.parts else _ABS + str((sc.base_dir / p).resolve())


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def pack_traces(sc: Scenario, name: str) -> bytes:
    """The trace files and folders partition `name` reads, as a tar archive laid out as the scenario's folder.
    A path that does not exist is left out (the worker's reader reports it). Raises ResourceError above
    SHIP_LIMIT_BYTES."""
    found = [(v, sc.base_dir / v) for _, _, v in trace_paths(sc) if (sc.base_dir / v).exists()]
    total = sum(_size(src) for _, src in dict(found).items())
    if total > SHIP_LIMIT_BYTES:
        raise ResourceError([Problem(sc.file, "", f"partition {name!r}: traces too large to ship with the task "
                                     f"(got {total / 2**20:,.0f} MiB, expected at most {SHIP_LIMIT_BYTES // 2**20} "
                                     "MiB: put them on a filesystem every worker mounts, docs/partitions.md)")])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for value, src in dict(found).items():
            tar.add(src, arcname=_arcname(value, sc))
    return buf.getvalue()


def _unship(text: str, folder: str, base: Path) -> str:
    """A label or message naming the private copy names the scenario's own file again."""
    return text.replace(folder + "/" + _ABS, "").replace(folder, str(base))


def run_part(sub: Scenario, run_id: str, shipped: bytes | None = None):
    """Run one partition's scenario (on the traces in `shipped`, a pack_traces archive, if given); return its
    Results, or ('error', class name, problems) for an error a user can act on (a ConsolidateError does not
    survive pickling with its problems)."""
    if shipped is None:
        return _run_part(sub, run_id)
    base = sub.base_dir
    with tempfile.TemporaryDirectory(prefix="consolidate-traces-") as folder:
        with tarfile.open(fileobj=io.BytesIO(shipped)) as tar:
            tar.extractall(folder, filter="data")
        for i, field, value in trace_paths(sub):
            arc = _arcname(value, sub)
            if arc != value:  # absolute: its copy's absolute path
                setattr(sub.vms[i].trace, field, folder + "/" + arc)
        sub.set_origin(sub.file, Path(folder))
        out = _run_part(sub, run_id)
        if isinstance(out, tuple):
            return out[:2] + ([(f, p, _unship(m, folder, base)) for f, p, m in out[2]],)
        out.vms["trace"] = [_unship(t, folder, base) for t in out.vms["trace"]]
        return out


def _run_part(sub: Scenario, run_id: str):
    try:
        return api.run(sub, run_id=run_id)  # pickled with a spooled vm_intervals read in (results/frames.py)
    except ConsolidateError as exc:
        return ("error", type(exc).__name__, [(p.file, p.path, p.message) for p in exc.problems])


def _result(name: str, value) -> Results:
    if isinstance(value, tuple) and value and value[0] == "error":
        cls = getattr(errors, value[1], ConsolidateError)
        raise cls([Problem(*p) for p in value[2]])
    return value


def run(source: str | Path | dict | Scenario | None = None, *, workers: int | None = None,
        scheduler: str | None = None, seed: int | None = None, policy: str | None = None,
        run_id: str | None = None, on_part: OnPart | None = None, ship_traces: bool = False) -> Results:
    """Run a scenario with its partitions on `workers` local processes (default: one per partition, at most the
    CPU count) or on the Dask scheduler at `scheduler` (e.g. tcp://10.0.0.5:8786); `workers=1` without a
    scheduler runs them in turn in this process, as api.run does. A scenario without partitions runs as api.run
    does. `ship_traces` sends each partition its trace files with the task instead of letting workers read the
    scenario's paths. `on_part(name, finished, total, wall_s)` is called as each partition finishes. Raises what
    api.run raises."""
    t0 = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sc = api.load_scenario(source, seed=seed, policy=policy)
    run_id = run_id or api.make_run_id(sc)
    subs = api.partition_scenarios(sc)
    if not subs:
        return api.run(sc, run_id=run_id)
    names = [n for n, _ in subs]
    done: dict[str, Results] = {}
    shipped = {n: pack_traces(sub, n) if ship_traces else None for n, sub in subs}

    def finished(name: str, value) -> None:
        done[name] = _result(name, value)
        if on_part is not None:
            on_part(name, len(done), len(subs), float(done[name].summary["wall_s"].iloc[0]))

    if scheduler is None and workers == 1:  # in turn, here: as api.run does, with a word after each
        for name, sub in subs:
            finished(name, _run_part(sub, run_id))
    elif scheduler:
        from distributed import Client, as_completed as dask_completed  # optional at import: only with a cluster

        with Client(scheduler) as client:
            # an archive goes to the cluster's memory once, not inside the task graph
            ship = {n: client.scatter(b) if b is not None else None for n, b in shipped.items()}
            futures = {client.submit(run_part, sub, run_id, ship[name], key=f"consolidate-{run_id}-{name}",
                                     pure=False): name for name, sub in subs}
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
            futures = {pool.submit(run_part, sub, run_id, shipped[name]): name for name, sub in subs}
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
