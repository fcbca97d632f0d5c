"""What a reader sees in a trace, before any scenario exists (`consolidate trace inspect`).

One row per VM on the trace's own clock: its first sample (start_s) and the end of its last (end_s), in
seconds (epoch seconds where the trace has them); the number of samples, their median step and the count of
gaps (steps longer than twice the median, as the readers' default `gap_s`), its shape where the trace carries one
(vcpus, memory_mb in MiB) and its time-weighted mean CPU utilisation (fraction of its vCPUs, before clipping;
gaps not counted). The header gives the span, the VM count and the warnings (samples above 100%, VMs without
samples, unmatched join keys).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from consolidate.errors import TraceError
from consolidate.scenario.model import TraceSource
from consolidate.workload import alibaba, azure, bitbrains, opendc
from consolidate.workload.timeline import Series, segments

_NO_FILL = TraceSource(native="-", gap="zero")
COLUMNS = ("vm", "start_s", "end_s", "samples", "step_s_median", "gaps", "vcpus", "memory_mb", "cpu_util_mean")


@dataclass
class Inspection:
    """A trace as its reader sees it: the layout, one row per VM (COLUMNS) and the reading's warnings."""

    kind: str
    path: str
    rows: list[dict]
    warnings: list[str] = field(default_factory=list)

    def header(self) -> str:
        """One line: the kind, the span, the VM count and the warnings."""
        if self.rows:
            t0 = min(r["start_s"] for r in self.rows)
            t1 = max(r["end_s"] for r in self.rows)
            span = f"span {t0:.10g} .. {t1:.10g} s ({(t1 - t0) / 86400:.2f} days)"
        else:
            span = "span none"
        warn = "; ".join(self.warnings) if self.warnings else "none"
        return f"{self.path}: {self.kind}, {span}, {len(self.rows)} VMs, warnings: {warn}"


def _opendc(path: Path) -> tuple[list[Series], list[str]]:
    return opendc.read_series(path, TraceSource(opendc=str(path)), None), []


def _bitbrains(path: Path) -> tuple[list[Series], list[str]]:
    return [bitbrains.read_file(f) for f in bitbrains.files_of(path)], []


# kind -> (does PATH hold this layout?, read every VM of PATH as Series with the reading's warnings)
LAYOUTS: dict[str, tuple[Callable[[Path], bool], Callable[[Path], tuple[list[Series], list[str]]]]] = {
    "opendc": (lambda p: p.is_dir() and any(all((p / f).is_file() for f in pair) for pair in opendc.LAYOUTS.values()),
               _opendc),
    "bitbrains": (bitbrains.looks_like, _bitbrains),
    "azure": (azure.looks_like, lambda p: azure.read_series(p, TraceSource(azure=str(p)), None)),
    "alibaba2018": (alibaba.looks_like, lambda p: alibaba.read_series(p, TraceSource(alibaba2018=str(p)), None)),
}


def register(kind: str, detect: Callable[[Path], bool], read: Callable[[Path], tuple[list[Series], list[str]]]) -> None:
    """Let `trace inspect` detect and read `kind` (reader modules call this beside sources.register)."""
    LAYOUTS[kind] = (detect, read)


def detect(path: Path) -> str:
    """The layout `path` holds; TraceError listing the known layouts otherwise."""
    if not path.exists():
        raise TraceError(str(path), "no such file or folder")
    for kind, (looks, _) in LAYOUTS.items():
        if looks(path):
            return kind
    raise TraceError(str(path), f"layout not recognised (expected one of: {', '.join(LAYOUTS)}; or give --kind)")


def vm_row(s: Series) -> dict:
    """One VM's row (COLUMNS)."""
    n = len(s.t_s)
    if n == 1 and s.dur_s is None:
        a, e, gaps, step = s.t_s, s.t_s, 0, np.nan
    else:
        # gap_s as the readers' default (twice the median step); "zero" so a gap adds no time to the mean
        a, e, _, gaps = segments(s, _NO_FILL)
        step = float(np.median(np.diff(s.t_s))) if n > 1 else float(np.median(s.dur_s))
    w = e - a
    u = np.asarray(s.util, dtype=np.float64)
    mean = float(np.sum(u * w) / np.sum(w)) if np.sum(w) > 0 else float(np.mean(u))
    start, end = s.life_s if s.life_s is not None else (float(s.t_s[0]), float(e[-1]))
    return {"vm": s.name, "start_s": start, "end_s": end, "samples": n,
            "step_s_median": step, "gaps": int(gaps), "vcpus": s.vcpus, "memory_mb": s.memory_mb,
            "cpu_util_mean": mean}


def inspect(path: Path, kind: str | None = None) -> Inspection:
    """Read the trace at `path` (layout `kind`, or detected) and describe every VM; raises TraceError."""
    kind = kind or detect(path)
    if kind not in LAYOUTS:
        raise TraceError(str(path), f"unknown kind {kind!r} (expected one of: {', '.join(LAYOUTS)})")
    if not path.exists():
        raise TraceError(str(path), "no such file or folder")
    series, warnings = LAYOUTS[kind][1](path)
    rows, n, over = [], 0, 0
    for s in series:  # once: a reader may hand out its VMs one at a time (joined.Selected)
        n += 1
        over += int(np.sum(np.asarray(s.util) > 1.0 + 1e-9))
        if len(s.t_s):
            rows.append(vm_row(s))
    if len(rows) < n:
        warnings.append(f"{n - len(rows)} VMs have no samples")
    if over:
        warnings.append(f"{over} samples above 100% utilisation (a run clips them, or refuses them with "
                        "over_100: error)")
    gaps = sum(r["gaps"] for r in rows)
    if gaps:
        fill = "counts zero over them by default (google2019's default); gap: hold or error" if kind == "google2019" \
            else "holds the last value over them by default; gap: zero or error"
        warnings.append(f"{gaps} gaps in {sum(r['gaps'] > 0 for r in rows)} VMs (a run {fill})")
    return Inspection(kind, str(path), rows, warnings)
