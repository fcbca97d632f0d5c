"""Turn a scenario's VM groups into one workload: a VM table and a time-major CPU-utilisation matrix."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from consolidate import rng
from consolidate.errors import Problem, ScenarioError, TraceError
from consolidate.scenario.model import Scenario, TypeAssignment
from consolidate.workload import sources


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


def build_workload(sc: Scenario) -> Workload:
    """Read or generate every group's traces, assign VM types and stack them onto the scenario grid.

    Raises ScenarioError naming the group's field path and the trace file and row for every bad trace.
    """
    vm_types = {v.name: v for v in sc.vm_types}
    frames, utils, problems, group_extras = [], [], [], []
    for i, g in enumerate(sc.vms):
        gen = rng.stream(sc.seed, rng.WORKLOAD, i)
        try:
            names, labels, util, extras = sources.read_group(i, g, sc, gen)
        except TraceError as exc:
            problems.append(Problem(sc.file, f"vms.{i}.trace.{sources.kind_of(g.trace)}", str(exc)))
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
