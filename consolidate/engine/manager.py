"""The consolidation manager: every interval it keeps the VMs' demand history, plans a consolidation round on a
snapshot of the state (pure policies) and runs maintenance drains; the moves it decides go to the migrations.

It reads placement only through DatacenterState.snapshot() and changes it only through Migrations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from consolidate import rng
from consolidate.engine.migration import MB, Migrations
from consolidate.engine.state import DatacenterState
from consolidate.policies.consolidation import Snapshot, plan_drain, plan_round
from consolidate.policies.registry import Policy, make_detector
from consolidate.scenario.model import Drain, Scenario


DEFAULT_HISTORY_INTERVALS = 30  # history kept when only drains run (no consolidation section)


@dataclass
class DrainRecord:
    """One maintenance drain: which hosts, which VMs had to leave, which could not and why."""

    index: int
    at_s: float
    hosts: list[int]
    moved: dict  # vm -> MigrationRecord
    stuck: dict  # vm -> reason (the latest)

    @property
    def evacuation_s(self) -> float:
        """From the drain to the end of its last migration (NaN if none finished)."""
        ends = [r.end_s for r in self.moved.values() if math.isfinite(r.end_s)]
        return max(ends) - self.at_s if ends else float("nan")


class ConsolidationManager:
    """Consolidation rounds (when the scenario has a policy) and maintenance drains of one run."""

    def __init__(self, env: simpy.Environment, sc: Scenario, state: DatacenterState, migrations: Migrations,
                 policy: Policy | None):
        self.env, self.state, self.migrations, self.policy = env, state, migrations, policy
        self.interval_s = sc.interval_s
        self.underload = sc.consolidation.underload if sc.consolidation is not None else True
        self.hosts_per_rack = sc.network.hosts_per_rack
        # without a consolidation policy, drains place VMs wherever they fit (up to full capacity)
        self.detector = policy.detector if policy is not None else make_detector("thr", 1.0)
        self.rng = rng.stream(sc.seed, rng.POLICY)
        length = sc.consolidation.history_intervals if sc.consolidation is not None else DEFAULT_HISTORY_INTERVALS
        # kept only when a policy reads it: shifting it costs a copy of intervals x VMs float64 each interval
        # (240 MB at a million VMs); otherwise rounds see no rows
        if not (self.detector.reads_history or (policy is not None and policy.selector.reads_history)):
            length = 0
        self.history = np.full((length, len(state.vm_host)), np.nan)
        self.demand = np.zeros(len(state.vm_host))
        # CloudSim's VMs record their first utilisation sample at the first host update, one interval in
        self._skip_first_sample = sc.cloudsim_compat
        self.drains: list[DrainRecord] = []
        for i, d in enumerate(sc.maintenance):
            env.process(self._drain_at(i, d))

    def observe(self, demand_mips: np.ndarray) -> None:
        """This interval's demand of every VM (MIPS): the newest history sample and what rounds place by."""
        self.demand = demand_mips
        if self._skip_first_sample:
            self._skip_first_sample = False
            return
        if len(self.history):
            self.history[:-1] = self.history[1:]  # in place: a round reads it at once, nothing keeps an older one
            self.history[-1] = demand_mips

    def _snapshot(self) -> Snapshot:
        st = self.state
        # the longest migration of each host's VMs, in scheduling intervals (LR and LRR extrapolate by it)
        secs = st.ram_mb * MB * 8 / (self.migrations.host_bps[np.where(st.vm_host >= 0, st.vm_host, 0)])
        longest = np.zeros(len(st.hosts))
        placed = st.vm_host >= 0
        np.maximum.at(longest, st.vm_host[placed], secs[placed])
        return st.snapshot(self.demand, self.history, np.ceil(longest / self.interval_s))

    def round(self) -> None:
        """Plan one consolidation round on the current state and start its migrations."""
        if self.policy is not None:
            moves = plan_round(self._snapshot(), self.detector, self.policy.selector, self.rng, self.underload)
            self.migrations.start_round(moves)

    def _drain_at(self, index: int, drain: Drain):
        """Process: at the drain's time, stop the hosts taking VMs and move every VM off them."""
        yield self.env.timeout(drain.at_s)
        hosts_ = self.state.hosts
        H = len(hosts_)
        if drain.hosts is not None:
            hosts = sorted(set(drain.hosts))
        elif drain.host_type is not None:
            hosts = np.flatnonzero(np.array(hosts_.type_names)[hosts_.host_type] == drain.host_type).tolist()
        else:
            per = self.hosts_per_rack
            hosts = list(range(drain.rack * per, min(H, (drain.rack + 1) * per)))
        self.state.draining[hosts] = True
        self.drains.append(DrainRecord(index=index, at_s=self.env.now, hosts=hosts, moved={}, stuck={}))
        self.retry_drains()

    def forget_stuck(self, vms: list[int]) -> None:
        """These VMs' host failed: they are no longer stuck on a drained host (their restart places them)."""
        for d in self.drains:
            for v in vms:
                d.stuck.pop(v, None)

    def retry_drains(self) -> None:
        """Move what can leave the draining hosts now (called at each drain and each interval after)."""
        if not self.state.draining.any():
            return
        moves, stuck = plan_drain(self._snapshot(), self.detector, self.state.draining)
        for mv in moves:
            rec = self.migrations.start(mv)
            for d in self.drains:
                if mv.source in d.hosts:
                    d.moved[mv.vm] = rec
                    d.stuck.pop(mv.vm, None)
        for v, why in stuck:
            for d in self.drains:
                if self.state.vm_host[v] in d.hosts:
                    d.stuck[v] = why
