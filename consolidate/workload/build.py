"""Turn a scenario's VM groups into one workload: a VM table and a time-major CPU-utilisation matrix."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from consolidate import rng
from consolidate.errors import Problem, ScenarioError, TraceError
from consolidate.scenario.model import Scenario, Synthetic, TypeAssignment, VmGroup
from consolidate.workload import planetlab
from consolidate.workload.native import read_native_source
from consolidate.workload.resample import resample, samples_needed


@dataclass
class Workload:
    """All VMs of a scenario.

    `vms` has one row per VM: vm (0..n-1), name, group, group_index, vm_type, vcpus, mips_per_vcpu, memory_mb, trace,
    profile.
    `cpu_util` is float32 of shape (intervals, VMs): fraction 0..1 of each VM's vCPUs per interval.
    """

    vms: pd.DataFrame
    cpu_util: np.ndarray
    # optional trace columns (columns.OPTIONAL) that some trace supplied: float32 (intervals, VMs), NaN where a
    # VM's trace lacks the column (the VM's profile fills it)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

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


def _fit_to_grid(values: np.ndarray, interval_s: float, start_s: float, sc: Scenario, repeat: bool,
                 where: str) -> np.ndarray:
    """Resample (rows, samples) onto the scenario grid, tiling if `repeat`; returns (rows, intervals)."""
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


def _synthetic(p: Synthetic, n: int, sc: Scenario, gen: np.random.Generator) -> np.ndarray:
    t = (np.arange(sc.n_intervals) + 0.5) * sc.interval_s  # mid-interval
    phase = gen.uniform(0, 2 * np.pi, size=(n, 1)) if p.random_phase else np.zeros((n, 1))
    util = p.mean + p.amplitude * np.sin(2 * np.pi * t[None, :] / p.period_s + phase)
    if p.noise_std > 0:
        util = util + gen.normal(0.0, p.noise_std, size=util.shape)
    return np.clip(util, 0.0, 1.0)


def _group_traces(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator
                  ) -> tuple[list[str], list[str], np.ndarray, dict[str, np.ndarray]]:
    """(names, trace labels, util (n, intervals), extra columns {name: (n, intervals)}) for one group;
    raises TraceError on a bad trace."""
    src = g.trace
    extras: dict[str, np.ndarray] = {}
    if src.synthetic is not None:
        n = g.count
        names = [f"{g.name or f'group{i}'}-{j}" for j in range(n)]
        return names, ["synthetic"] * n, _synthetic(src.synthetic, n, sc, gen), extras
    if src.planetlab is not None:
        names, pct = planetlab.load_planetlab(src.planetlab, sc.base_dir)
        labels = [f"{src.planetlab}/{nm}" for nm in names]
        rows = _fit_to_grid(pct.astype(np.float32) / 100.0, planetlab.INTERVAL_S, 0.0, sc, src.repeat, src.planetlab)
    else:
        path = Path(src.native)
        if not path.is_absolute():
            path = sc.base_dir / path
        traces = read_native_source(path)
        names = [t.name for t in traces]
        labels = [str(path)] * len(traces)
        out = []
        cols = sorted({c for t in traces for c in t.extra})
        extras = {c: np.full((len(traces), sc.n_intervals), np.nan) for c in cols}
        for j, t in enumerate(traces):
            step = t.interval_s if np.isfinite(t.interval_s) else sc.duration_s - t.start_s
            where = f"{path} (VM {t.name!r})"
            out.append(_fit_to_grid(t.cpu_util[None, :], step, t.start_s, sc, src.repeat, where))
            for c, v in t.extra.items():
                extras[c][j] = _fit_to_grid(v[None, :], step, t.start_s, sc, src.repeat, where)[0]
        rows = np.vstack(out)
    n = g.count if g.count is not None else len(names)
    pick = np.arange(n) % len(names)  # more VMs than traces: replay them in order
    return [names[j] if n <= len(names) else f"{names[j]}#{k}" for k, j in enumerate(pick)], \
        [labels[j] for j in pick], rows[pick], {c: v[pick] for c, v in extras.items()}


def build_workload(sc: Scenario) -> Workload:
    """Read or generate every group's traces, assign VM types and stack them onto the scenario grid.

    Raises ScenarioError naming the group's field path and the trace file and row for every bad trace.
    """
    vm_types = {v.name: v for v in sc.vm_types}
    frames, utils, problems, group_extras = [], [], [], []
    for i, g in enumerate(sc.vms):
        gen = rng.stream(sc.seed, rng.WORKLOAD, i)
        kind = "synthetic" if g.trace.synthetic is not None else ("planetlab" if g.trace.planetlab else "native")
        try:
            names, labels, util, extras = _group_traces(i, g, sc, gen)
        except TraceError as exc:
            problems.append(Problem(sc.file, f"vms.{i}.trace.{kind}", str(exc)))
            continue
        types_ = _assign_types(g.type, len(names), gen)
        frames.append(pd.DataFrame({
            "name": names,
            "group": g.name or f"group{i}",
            "group_index": i,
            "vm_type": types_,
            "vcpus": [vm_types[t].vcpus for t in types_],
            "mips_per_vcpu": [vm_types[t].mips_per_vcpu for t in types_],
            "memory_mb": [vm_types[t].memory_mb for t in types_],
            "trace": labels,
            "profile": g.profile,
        }))
        utils.append(util)
        group_extras.append(extras)
    if problems:
        raise ScenarioError(problems)
    vms = pd.concat(frames, ignore_index=True)
    vms.insert(0, "vm", np.arange(len(vms), dtype=np.int32))
    cpu_util = np.ascontiguousarray(np.vstack(utils).T, dtype=np.float32) if utils else \
        np.zeros((sc.n_intervals, 0), np.float32)
    extra = {}
    for col in sorted({c for e in group_extras for c in e}):
        parts = [e.get(col, np.full(u.shape, np.nan)) for e, u in zip(group_extras, utils)]
        extra[col] = np.ascontiguousarray(np.vstack(parts).T, dtype=np.float32)
    return Workload(vms=vms, cpu_util=cpu_util, extra=extra)
