"""Trace sources by kind: each reader module registers the `TraceSource` field it reads, the builder dispatches here.

A reader turns one VM group into its traces on the scenario grid; what every reader needs alike (fitting a
fixed-step series onto the grid, replaying traces when the group has more VMs than traces) lives here, once.
The built-in readers (planetlab, native, synthetic) register themselves when the package is imported
(`consolidate/workload/__init__.py`), so the builder always sees them.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from consolidate.errors import TraceError
from consolidate.scenario.model import Scenario, TraceSource, VmGroup
from consolidate.workload.resample import resample, samples_needed

# TraceSource fields that tune a source rather than name one
OPTIONS = frozenset({"repeat", "order", "start", "gap", "gap_s", "over_100", "limit", "sample", "ncu_vcpus",
                     "nmu_mib"})


class GroupTraces(NamedTuple):
    """One group's traces: VM names, trace labels, CPU utilisation (fraction 0..1 of the VM's vCPUs) as
    (VMs, intervals) (an array, or a grid.Drawn made a block of VMs at a time) and optional columns
    {name: (VMs, intervals)} in the columns' own units. Readers of traces
    with lifecycles also give each VM's start_s and end_s on the run clock (s; util is 0 outside), and its
    shape where the trace has it (vcpus, memory_mb, mhz: the VM's CPU in MHz; NaN where unknown), and the
    warnings of the reading (clipped samples, VMs left out)."""

    names: list[str]
    labels: list[str]
    util: np.ndarray
    extra: dict[str, np.ndarray]
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None
    vcpus: np.ndarray | None = None
    memory_mb: np.ndarray | None = None
    mhz: np.ndarray | None = None
    warnings: tuple[str, ...] = ()
    clipped: int = 0


# (group index, group, scenario, the group's seeded generator) -> the traces it has (replay is done here)
Reader = Callable[[int, VmGroup, Scenario, np.random.Generator], GroupTraces]

_READERS: dict[str, Reader] = {}


def register(kind: str, reader: Reader) -> Reader:
    """Make `reader` the reader of `TraceSource.<kind>`; returns the reader. A kind registers once."""
    if kind in _READERS and _READERS[kind] is not reader:
        raise ValueError(f"trace source {kind!r} already has a reader ({_READERS[kind].__module__})")
    _READERS[kind] = reader
    return reader


def unregister(kind: str) -> None:
    """Forget the reader of `kind` (tests register toy kinds and must leave no trace of them)."""
    del _READERS[kind]


def kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_READERS)


def source_fields(model: type[TraceSource] = TraceSource) -> list[str]:
    """The fields of `model` that name a source (the kinds users can write), in declaration order."""
    return [k for k in model.model_fields if k not in OPTIONS]


def kind_of(src: TraceSource) -> str:
    """The one source field `src` gives (the scenario model has already checked there is exactly one)."""
    return next(k for k in source_fields(type(src)) if getattr(src, k) is not None)


def reader_for(kind: str) -> Reader:
    """The reader registered for `kind`; a schema field without a reader is a programming error, said plainly."""
    try:
        return _READERS[kind]
    except KeyError:
        raise LookupError(f"trace source {kind!r} has no registered reader (registered: {', '.join(kinds())}); "
                          "a reader module must call consolidate.workload.sources.register and be imported by "
                          "consolidate/workload/__init__.py") from None


def fit_to_grid(values: np.ndarray, interval_s: float, start_s: float, sc: Scenario, repeat: bool,
                where: str) -> np.ndarray:
    """Resample (rows, samples) taken every `interval_s` seconds from `start_s` onto the scenario grid, tiling
    if `repeat`; returns (rows, intervals). Raises TraceError (naming `where`) if the trace is too short."""
    if start_s > 0:
        raise TraceError(where, f"trace starts at time_s {start_s:g} (expected the first sample at 0 or earlier)")
    need = samples_needed(sc.duration_s, interval_s, start_s)
    have = values.shape[1]
    if have < need:
        if not repeat:
            raise TraceError(where, f"trace covers {have * interval_s + start_s:g} s ({have} samples of {interval_s:g} s) "
                             f"but duration_s is {sc.duration_s:g} (expected at least {need} samples, or repeat: true)")
        values = np.tile(values, (1, -(-need // have)))
    return resample(values, interval_s, sc.interval_s, sc.n_intervals, start_s)


def select(n: int, src: TraceSource, gen: np.random.Generator) -> np.ndarray:
    """Which of a trace's `n` VMs (indices, in the trace's order) a group keeps: a seeded `sample` fraction of
    them, then the first `limit`. Readers call it on their VM list before they read samples."""
    keep = np.arange(n)
    if src.sample is not None:
        keep = np.sort(gen.choice(n, size=int(round(n * src.sample)), replace=False)) if n else keep
    if src.limit is not None:
        keep = keep[:src.limit]
    return keep


def from_grid(grid, labels: list[str]) -> GroupTraces:
    """GroupTraces from a timeline.Grid (a reader of timestamped traces)."""
    return GroupTraces(grid.names, labels, grid.util, grid.extra, grid.start_s, grid.end_s, grid.vcpus,
                       grid.memory_mb, grid.mhz, tuple(grid.warnings), grid.clipped)


def _replay(t: GroupTraces, count: int | None) -> GroupTraces:
    """`count` VMs from the traces (all of them if None): more VMs than traces replay them in order, each copy
    named `trace#k`."""
    n = count if count is not None else len(t.names)
    if n and not len(t.names):
        raise TraceError(t.labels[0] if t.labels else "trace", f"holds no VM in the run (expected at least one for "
                         f"count {n})")
    if n == len(t.names):
        return t  # every trace once, in order: nothing to copy (a synthetic group is made later, block by block)
    pick = np.arange(n) % len(t.names) if n else np.arange(0)
    per_vm = lambda a: None if a is None else a[pick]  # noqa: E731
    return GroupTraces([t.names[j] if n <= len(t.names) else f"{t.names[j]}#{k}" for k, j in enumerate(pick)],
                       [t.labels[j] for j in pick], t.util[pick], {c: v[pick] for c, v in t.extra.items()},
                       per_vm(t.start_s), per_vm(t.end_s), per_vm(t.vcpus), per_vm(t.memory_mb), per_vm(t.mhz),
                       t.warnings, t.clipped)


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Group `i`'s traces on the scenario grid, one row per VM; raises TraceError on a bad trace."""
    return _replay(reader_for(kind_of(g.trace))(i, g, sc, gen), g.count)
