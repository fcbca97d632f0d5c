"""Synthetic traces: a sine around a mean with optional random phase and Gaussian noise, drawn from the group's
seeded generator (before the type assignment draws from it, so the order of draws is part of the results)."""
from __future__ import annotations

import numpy as np

from consolidate.scenario.model import Scenario, Synthetic, VmGroup
from consolidate.workload.sources import GroupTraces, register


def _synthetic(p: Synthetic, n: int, sc: Scenario, gen: np.random.Generator) -> np.ndarray:
    t = (np.arange(sc.n_intervals) + 0.5) * sc.interval_s  # mid-interval
    phase = gen.uniform(0, 2 * np.pi, size=(n, 1)) if p.random_phase else np.zeros((n, 1))
    util = p.mean + p.amplitude * np.sin(2 * np.pi * t[None, :] / p.period_s + phase)
    if p.noise_std > 0:
        util = util + gen.normal(0.0, p.noise_std, size=util.shape)
    return np.clip(util, 0.0, 1.0)


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """`g.count` synthetic VMs named `<group>-<j>`; utilisation as a fraction 0..1 per scenario interval."""
    n = g.count  # the scenario model requires a count for synthetic groups
    names = [f"{g.name or f'group{i}'}-{j}" for j in range(n)]
    return GroupTraces(names, ["synthetic"] * n, _synthetic(g.trace.synthetic, n, sc, gen), {})


register("synthetic", read_group)
