"""The one function a sweep runs per scenario, locally or on a Dask worker: run it, keep its summary.

It writes the run's summary to `<out>/runs/<key>/summary.parquet` through a temporary file and a rename, so a
killed run leaves no half-written result and a resumed sweep can trust every file it finds.
"""
from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

from consolidate import api
from consolidate.errors import ConsolidateError


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
    except Exception as exc:  # a failing run is recorded and the sweep goes on
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    (folder / "error.txt").write_text(msg)
    return {"key": key, "status": "failed", "error": msg, "wall_s": time.perf_counter() - t0}
