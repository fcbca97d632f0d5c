"""When hosts are down: failure schedules drawn from lifetime distributions, or read from a failure trace.

A failure process is a renewal process per host (or per rack, whose hosts all go down together): up for a time
to failure, down for a time to repair, again, from t = 0 (every host starts freshly repaired) to the end of the
run. A host's down intervals from every process that covers it and from the trace are merged. Pure functions:
the engine (engine/failures.py) turns the schedule into events.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consolidate import rng
from consolidate.errors import TraceError
from consolidate.scenario.model import Lifetime

TRACE_COLUMNS = ("target", "index", "start_s", "end_s")
MAX_TRACE_BYTES = 64 * 2 ** 20  # a failure trace is a list of incidents, not a telemetry dump


def draw(life: Lifetime, gen: np.random.Generator, n: int) -> np.ndarray:
    """n durations in seconds with mean `life.mean_s`."""
    if life.distribution == "exponential":
        return gen.exponential(life.mean_s, n)
    if life.distribution == "weibull":
        # numpy's weibull has scale 1: E = scale * Gamma(1 + 1/k)
        scale = life.mean_s / math.gamma(1.0 + 1.0 / life.shape)
        return scale * gen.weibull(life.shape, n)
    # lognormal with log-sd sigma: E = exp(mu + sigma^2 / 2)
    mu = math.log(life.mean_s) - life.shape ** 2 / 2.0
    return gen.lognormal(mu, life.shape, n)


def renewal(ttf: Lifetime, ttr: Lifetime, gen: np.random.Generator, until_s: float) -> list[tuple[float, float]]:
    """Down intervals [start_s, end_s) of one renewal process that starts up at t = 0, up to `until_s`."""
    out, t = [], 0.0
    while True:
        # draw in pairs so the stream's use does not depend on where the run ends
        up, down = draw(ttf, gen, 1)[0], draw(ttr, gen, 1)[0]
        t += up
        if t >= until_s:
            return out
        out.append((t, t + down))
        t += down


def merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of intervals, sorted, overlapping or touching ones joined."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class TraceFailure:
    """One row of a failure trace."""

    target: str  # "host" or "rack"
    index: int
    start_s: float
    end_s: float


def read_trace(path: Path) -> list[TraceFailure]:
    """A failure trace: CSV with columns target (host or rack), index, start_s, end_s. Raises TraceError naming the
    file and the 1-based data row of the first problem."""
    where = str(path)
    if not path.is_file():
        raise TraceError(where, "not a regular file (expected a CSV failure trace)")
    if path.stat().st_size > MAX_TRACE_BYTES:
        raise TraceError(where, f"file too large for a failure trace (got {path.stat().st_size} bytes, expected at "
                         f"most {MAX_TRACE_BYTES})")
    rows = []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or set(TRACE_COLUMNS) - set(reader.fieldnames):
                raise TraceError(where, f"missing columns (got {', '.join(reader.fieldnames or [])}, expected "
                                 f"{', '.join(TRACE_COLUMNS)})")
            for i, r in enumerate(reader, start=1):
                target = (r["target"] or "").strip()
                if target not in ("host", "rack"):
                    raise TraceError(where, f"target must be host or rack (got {target[:20]!r})", i)
                try:
                    index, start, end = int(r["index"]), float(r["start_s"]), float(r["end_s"])
                except (TypeError, ValueError):
                    raise TraceError(where, "index, start_s and end_s must be numbers", i) from None
                if index < 0 or not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
                    raise TraceError(where, f"expected index >= 0 and 0 <= start_s < end_s (got {index}, {start:g}, "
                                     f"{end:g})", i)
                rows.append(TraceFailure(target, index, start, end))
    except UnicodeDecodeError:
        raise TraceError(where, "not a text file (expected CSV)") from None
    return rows


def schedule(failures, host_types: list[str], hosts_per_rack: int, seed: int, until_s: float,
             trace: list[TraceFailure] = ()) -> list[list[tuple[float, float]]]:
    """Down intervals of every host ([start_s, end_s), merged, sorted) over [0, until_s) from the scenario's
    `failures` block: `host_types` names each host's type (in host order), racks are consecutive groups of
    `hosts_per_rack` hosts, `trace` the rows of its failure trace."""
    H = len(host_types)
    down: list[list[tuple[float, float]]] = [[] for _ in range(H)]
    for p, proc in enumerate(failures.hosts):
        for h in range(H):
            if proc.host_type is None or host_types[h] == proc.host_type:
                gen = rng.stream(seed, rng.FAILURES, 0, p, h)
                down[h] += renewal(proc.time_to_failure, proc.time_to_repair, gen, until_s)
    racks = -(-H // hosts_per_rack)
    for p, proc in enumerate(failures.racks):
        for r in range(racks):
            members = range(r * hosts_per_rack, min(H, (r + 1) * hosts_per_rack))
            if proc.host_type is not None and all(host_types[h] != proc.host_type for h in members):
                continue
            spans = renewal(proc.time_to_failure, proc.time_to_repair, rng.stream(seed, rng.FAILURES, 1, p, r),
                            until_s)
            for h in members:
                down[h] += spans
    for row in trace:
        members = [row.index] if row.target == "host" else \
            range(row.index * hosts_per_rack, min(H, (row.index + 1) * hosts_per_rack))
        for h in members:
            down[h].append((row.start_s, row.end_s))
    return [[(a, min(b, until_s)) for a, b in merge(d) if a < until_s] for d in down]
