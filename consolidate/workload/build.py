"""Turn a scenario's VM groups into one workload: a VM table and a time-major CPU-utilisation matrix."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from consolidate import rng
from consolidate.errors import Problem, ScenarioError, TraceError
from consolidate.units import BYTES_PER_MB
from consolidate.scenario.model import Scenario, TypeAssignment, VmGroup
from consolidate.workload import grid, sources
from consolidate.workload.grid import SpooledGrid


@dataclass
class Workload:
    """All VMs of a scenario.

    `vms` has one row per VM: vm (0..n-1), name, group, group_index, vm_type, vcpus, mips_per_vcpu, memory_mb, trace,
    profile.
    `cpu_util` is float32 of shape (intervals, VMs): fraction 0..1 of each VM's vCPUs per interval. A small grid
    is an ndarray; a big one a grid.SpooledGrid on a temporary file, read by interval (`cpu_util[k]`,
    `cpu_util[k, vm]`) a window at a time; `close()` frees its file (a finished or failed run does).
    """

    vms: pd.DataFrame
    cpu_util: np.ndarray | SpooledGrid
    # optional trace columns (columns.OPTIONAL) that some trace supplied: float32 (intervals, VMs), NaN where a
    # VM's trace lacks the column (the VM's profile fills it); spooled with cpu_util when it is
    extra: dict[str, np.ndarray | SpooledGrid] = field(default_factory=dict)
    # each VM's life on the run clock (s): it arrives at start_s and leaves at end_s; cpu_util is 0 outside
    start_s: np.ndarray | None = None
    end_s: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)  # what reading the traces changed (clipped samples, ...)
    clipped: int = 0  # trace samples above 100% clipped

    @property
    def lifecycles(self) -> bool:
        """Whether some VM arrives after t = 0 or leaves before the end (else the run is the classic one)."""
        return self.start_s is not None and bool((self.start_s > 0).any() or (self.end_s < self.duration_s).any())

    duration_s: float = 0.0

    def memory_need_mb(self, basis: str) -> np.ndarray:
        """Memory each VM is packed by (MiB): provisioned, or with basis `used` the most its trace's
        mem_used_bytes reaches over the run (never above provisioned; provisioned where the trace lacks it)."""
        prov = self.vms["memory_mb"].to_numpy(np.float64)
        used = self.extra.get("mem_used_bytes")
        if basis != "used" or used is None:
            return prov
        peak = grid.peak(used).astype(np.float64) / BYTES_PER_MB  # NaN where the trace never gives it
        return np.where(np.isfinite(peak) & (peak >= 0), np.minimum(prov, peak), prov)

    @property
    def spooled(self) -> bool:
        """Whether the grids are on a temporary file (read a window at a time) rather than held."""
        return isinstance(self.cpu_util, SpooledGrid)

    def close(self) -> None:
        """Free the grids' spool file, if any (the workload is not read after this)."""
        grid.close(self.cpu_util)

    @property
    def nominal_mips(self) -> np.ndarray:
        """Each VM's full-size CPU, vCPUs x MIPS per vCPU, as float64 (VMs,)."""
        return self.vms["vcpus"].to_numpy(np.float64) * self.vms["mips_per_vcpu"].to_numpy(np.float64)


def _assign_types(rule: TypeAssignment, n: int, gen: np.random.Generator) -> list[str]:
    k = len(rule.types)
    if rule.rule == "fixed":
        idx = np.zeros(n, dtype=int)
    elif rule.rule == "blocks":
        idx = np.arange(n) // max(1, -(-n // k))
    elif rule.rule == "cycle":
        idx = np.arange(n) % k
    else:
        w = np.asarray(rule.weights if rule.weights is not None else [1.0] * k, dtype=float)
        idx = gen.choice(k, size=n, p=w / w.sum())
    return [rule.types[i] for i in idx]


def _shape_types(g: VmGroup, vm_types: dict, vcpus: np.ndarray, mem: np.ndarray, names: list[str]) -> list[str]:
    """The scenario VM type of each trace VM by the group's shape rule (nearest or a table)."""
    if g.shape == "nearest":
        # smallest first: memory, then vCPUs, then MIPS
        order = sorted(vm_types.values(), key=lambda t: (t.memory_mb, t.vcpus, t.mips_per_vcpu))
        out = []
        for n, c, m in zip(names, vcpus, mem):
            t = next((t for t in order if t.vcpus >= c and (np.isnan(m) or t.memory_mb >= m)), None)
            if t is None:
                raise TraceError(n, f"no VM type holds this VM's shape (got {c:g} vCPUs, {m:g} MB; expected a "
                                 f"vm_type at least that large, or shape: as-is)")
            out.append(t.name)
        return out
    out = []
    for n, c, m in zip(names, vcpus, mem):
        key = f"{c:g}x{m:g}"
        if key not in g.shape:
            raise TraceError(n, f"shape {key} is not in the group's shape table (expected one of: "
                             f"{', '.join(g.shape)})")
        out.append(g.shape[key])
    return out


def _group_frame(i: int, g: VmGroup, gt: sources.GroupTraces, vm_types: dict, gen: np.random.Generator
                 ) -> pd.DataFrame:
    """One group's VM table: names, types and sizes by the group's shape rule."""
    names = gt.names
    n = len(names)
    nan = np.full(n, np.nan)
    vcpus_t, mem_t, mhz_t = (a if a is not None else nan for a in (gt.vcpus, gt.memory_mb, gt.mhz))
    if g.shape != "group":
        # a trace without memory sizes (Alibaba normalises them) shapes by vCPUs; as-is then takes the type's memory
        missing = np.flatnonzero(np.isnan(vcpus_t) | (np.isnan(mem_t) & (g.shape != "as-is") & (g.shape != "nearest")))
        if missing.size:
            raise TraceError(names[missing[0]], f"the trace gives no vCPUs or memory for this VM (expected them for "
                             f"shape {g.shape if isinstance(g.shape, str) else 'table'}, or shape: group)")
        vcpus_t = np.ceil(vcpus_t - 1e-9)
    if g.shape == "group" or g.shape == "as-is":
        types_ = _assign_types(g.type, n, gen)
    else:
        types_ = _shape_types(g, vm_types, vcpus_t, mem_t, names)
    vcpus = [vm_types[t].vcpus for t in types_]
    mips = [vm_types[t].mips_per_vcpu for t in types_]
    memory = [vm_types[t].memory_mb for t in types_]
    if g.shape == "as-is":
        vcpus = vcpus_t.astype(int).tolist()
        memory = np.where(np.isnan(mem_t), memory, mem_t).tolist()
        # MHz as MIPS (one instruction per cycle, as CloudSim counts) where the trace gives the VM's clock
        mips = np.where(np.isfinite(mhz_t) & (mhz_t > 0), mhz_t / np.maximum(vcpus_t, 1), mips).tolist()
    return pd.DataFrame({
        "name": names,
        "group": g.name or f"group{i}",
        "group_index": i,
        "vm_type": types_,
        "vcpus": vcpus,
        "mips_per_vcpu": mips,
        "memory_mb": memory,
        "trace": gt.labels,
        "profile": g.profile,
    })


def _group_life(g: VmGroup, gt: sources.GroupTraces, sc: Scenario
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Each VM's life on the run clock (the trace's, cut by the group's start_s/end_s) and the share of each
    interval (0..1) the group's window covers, which scales its util (None: the whole run, util as it is)."""
    n = len(gt.names)
    start = gt.start_s.copy() if gt.start_s is not None else np.zeros(n)
    end = gt.end_s.copy() if gt.end_s is not None else np.full(n, sc.duration_s)
    share = None
    if g.start_s is not None or g.end_s is not None:
        a = g.start_s if g.start_s is not None else 0.0
        b = min(g.end_s, sc.duration_s) if g.end_s is not None else sc.duration_s
        start, end = np.maximum(start, a), np.minimum(end, b)
        t0 = np.arange(sc.n_intervals) * sc.interval_s
        share = np.clip((np.minimum(b, t0 + sc.interval_s) - np.maximum(a, t0)) / sc.interval_s, 0.0, 1.0)
    return start, end, share


def _hand_over(out: grid.GridWriter, gt: sources.GroupTraces, share: np.ndarray | None, n_intervals: int) -> None:
    """Put a group's util (times its window's `share`) and optional columns on the grid, a block of VMs at a
    time, as float32 (each value rounded once, as converting the whole group did)."""
    for a, block in grid.vm_blocks(gt.util, grid.block_vms(n_intervals)):
        if share is not None:
            block = block * share[None, :]
        cols = {"cpu_util": np.asarray(block, dtype=np.float32)}
        for col, v in gt.extra.items():
            cols[col] = np.asarray(v[a:a + len(block)], dtype=np.float32)
        out.add(cols)


def build_workload(sc: Scenario, spool_dir: Path | None = None) -> Workload:
    """Read or generate every group's traces, assign VM types and put them onto the scenario grid.

    A grid of more than grid.HOLD_VALUES values is spooled to an unnamed temporary file in `spool_dir` (None:
    the system's temporary folder), 4 bytes per VM-interval and column; the Workload's close() frees it.
    Raises ScenarioError naming the group's field path and the trace file and row for every bad trace.
    """
    vm_types = {v.name: v for v in sc.vm_types}
    frames, problems = [], []
    starts, ends, warnings, clipped = [], [], [], 0
    out = grid.GridWriter(sc.n_intervals, spool_dir)
    try:
        for i, g in enumerate(sc.vms):
            gen = rng.stream(sc.seed, rng.WORKLOAD, i)
            try:
                gt = sources.read_group(i, g, sc, gen)
                start, end, share = _group_life(g, gt, sc)
                # the values before the types: a synthetic group draws them from `gen` now, block by block, in
                # the order it always drew them, and its types after them
                _hand_over(out, gt, share, sc.n_intervals)
                frames.append(_group_frame(i, g, gt, vm_types, gen))
            except TraceError as exc:
                what = "shape" if "shape" in str(exc) or "vCPUs or memory" in str(exc) else \
                    f"trace.{sources.kind_of(g.trace)}"
                problems.append(Problem(sc.file, f"vms.{i}.{what}", str(exc)))
                continue
            starts.append(start)
            ends.append(end)
            warnings.extend(gt.warnings)
            clipped += gt.clipped
            del gt  # a trace reader's whole group goes before the next group is read
        if problems:
            raise ScenarioError(problems)
        cpu_util, extra = out.finish()
    except BaseException:
        out.close()
        raise
    # an empty group (count 0: a partition's placeholder) must not turn the columns' dtypes to object
    vms = pd.concat([f for f in frames if len(f)] or frames, ignore_index=True)
    vms.insert(0, "vm", np.arange(len(vms), dtype=np.int32))
    wl = Workload(vms=vms, cpu_util=cpu_util, extra=extra, start_s=np.concatenate(starts),
                  end_s=np.concatenate(ends), warnings=warnings, clipped=clipped, duration_s=sc.duration_s)
    if wl.lifecycles:
        # only then: a run whose VMs all live the whole run keeps the classic VM table
        wl.vms["start_s"], wl.vms["end_s"] = wl.start_s, wl.end_s
    return wl
