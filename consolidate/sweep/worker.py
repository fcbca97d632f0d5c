"""The one function a sweep runs per scenario, locally or on a Dask worker: run it, keep its summary.

It writes the run's summary to `<out>/runs/<key>/summary.parquet` through a temporary file and a rename, so a
killed run leaves no half-written result and a resumed sweep can trust every file it finds (the key names the
fully resolved scenario and the package version, sweep/run.py).

Local pool workers are started with `init_worker`: Ctrl-C is the parent's to handle (it cancels the queue and
ends the workers), and a worker whose parent dies, even by SIGKILL, ends too.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from consolidate import api
from consolidate.errors import ConsolidateError

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 0.5


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid:  # re-parented: the sweep that started us is gone
            os._exit(1)


def init_worker(parent_pid: int) -> None:
    """Pool initializer: ignore SIGINT (the parent decides), die on SIGTERM, and die with the parent (the kernel's
    parent-death signal where there is one, and a watcher thread everywhere)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the CLI's SIGTERM handler is inherited through fork
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the watcher alone
        pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def run_one(data: dict, base_dir: str, out_dir: str, key: str) -> dict:
    """Run one scenario mapping; return {key, status ('ok' or 'failed'), error, wall_s}. Never raises."""
    t0 = time.perf_counter()
    folder = Path(out_dir) / "runs" / key
    folder.mkdir(parents=True, exist_ok=True)
    try:
        res = api.run(api.load_scenario(data, base_dir=base_dir), run_id=key)
        tmp = folder / f".summary.{os.getpid()}.parquet"
        res.summary.to_parquet(tmp, index=False)
        os.replace(tmp, folder / "summary.parquet")
        (folder / "error.txt").unlink(missing_ok=True)
        return {"key": key, "status": "ok", "error": "", "wall_s": time.perf_counter() - t0}
    except ConsolidateError as exc:
        msg = str(exc)
    except MemoryError:
        msg = "out of memory (expected a smaller run, or fewer --workers)"
    except Exception as exc:  # a failing run is recorded and the sweep goes on
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    (folder / "error.txt").write_text(msg)
    return {"key": key, "status": "failed", "error": msg, "wall_s": time.perf_counter() - t0}
