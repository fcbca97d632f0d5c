"""Synthetic traces: a sine around a mean with optional random phase and Gaussian noise, drawn from the group's
seeded generator (before the type assignment draws from it, so the order of draws is part of the results).

The group's values are made a block of VMs at a time as the workload builder takes them (grid.Drawn), never as
one (VMs, intervals) float64 array: every phase is drawn first, then each block's noise in turn. The noise is
drawn VM-major, so the blocks' draws are the whole group's draws in the same order, and every value is the same
bit for bit whatever the block size.
"""
from __future__ import annotations

import numpy as np

from consolidate.scenario.model import Scenario, Synthetic, VmGroup
from consolidate.workload.grid import Drawn
from consolidate.workload.sources import GroupTraces, register


def _synthetic(p: Synthetic, n: int, sc: Scenario, gen: np.random.Generator) -> Drawn:
    t = (np.arange(sc.n_intervals) + 0.5) * sc.interval_s  # mid-interval
    phase = gen.uniform(0, 2 * np.pi, size=(n, 1)) if p.random_phase else np.zeros((n, 1))
    made = 0

    def make(first: int, count: int) -> np.ndarray:
        nonlocal made
        if first != made:  # the generator is shared: a block out of turn would take another block's noise
            raise RuntimeError(f"synthetic VMs are made in order (expected VM {made} next, asked for {first})")
        made += count
        util = p.mean + p.amplitude * np.sin(2 * np.pi * t[None, :] / p.period_s + phase[first:first + count])
        if p.noise_std > 0:
            util = util + gen.normal(0.0, p.noise_std, size=util.shape)
        return np.clip(util, 0.0, 1.0)

    return Drawn((n, sc.n_intervals), make)


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """`g.count` synthetic VMs named `<group>-<j>`; utilisation as a fraction 0..1 per scenario interval, made a
    block of VMs at a time when the builder takes them (before the group's types are drawn)."""
    n = g.count  # the scenario model requires a count for synthetic groups
    names = [f"{g.name or f'group{i}'}-{j}" for j in range(n)]
    return GroupTraces(names, ["synthetic"] * n, _synthetic(g.trace.synthetic, n, sc, gen), {})


register("synthetic", read_group)
