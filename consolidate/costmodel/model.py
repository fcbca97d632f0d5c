"""Bind the cost tables to one scenario's VMs and hosts: which configuration each VM runs under on each host
type, its event and I/O rates in each interval (trace columns where given, its profile elsewhere)."""
from __future__ import annotations

import numpy as np

from consolidate.costmodel.config import resolve
from consolidate.costmodel.interval import IntervalOverhead, interval_overhead, world_switches_per_s
from consolidate.costmodel.tables import PRICED_COLUMNS, REASONS, TLB_COLUMN, build_tables
from consolidate.scenario.model import HostType, Scenario
from consolidate.workload.build import Workload
from consolidate.workload.profiles import EVENT_COLUMNS, event_rates, io_rates, profile_table


class OverheadModel:
    """The overhead of a scenario's VMs, interval by interval. Pure arithmetic; the engine owns time."""

    def __init__(self, sc: Scenario, wl: Workload, host_types: list[HostType]):
        self.sc, self.wl = sc, wl
        self.timeslice_s = sc.overhead.timeslice_s
        groups = wl.vms["group_index"].to_numpy()
        configs, self.cfg_of = [], np.zeros((len(sc.vms), len(host_types)), dtype=np.int64)
        for gi, g in enumerate(sc.vms):
            for ti, ht in enumerate(host_types):
                self.cfg_of[gi, ti] = len(configs)
                configs.append(resolve(g, ht))
        self.tables = build_tables(configs)
        self.group = groups
        self.vcpus = wl.vms["vcpus"].to_numpy(np.float64)
        pt = profile_table()
        self.profile = np.array([pt.index(p) for p in wl.vms["profile"]], dtype=np.int64)
        ev_idx = [EVENT_COLUMNS.index(c) for c in PRICED_COLUMNS]
        self._ev_idx, self._tlb_idx = np.array(ev_idx), EVENT_COLUMNS.index(TLB_COLUMN)
        self._halt = PRICED_COLUMNS.index("halts_per_s")
        # reasons that can occur in this scenario: only these get columns in the results
        any_exit = self.tables.ev_exits.sum(axis=(0, 1)) + self.tables.net.exits.sum(axis=0) + \
            self.tables.disk.exits.sum(axis=0)
        self.active_reasons = np.flatnonzero(any_exit > 0)

    @property
    def reasons(self) -> list[str]:
        """Exit reasons that occur in this scenario (column order of `exits_per_s` slices)."""
        return [REASONS[i] for i in self.active_reasons]

    def configs_for(self, vm_host: np.ndarray, host_type: np.ndarray) -> np.ndarray:
        """Configuration index of every VM on its current host (-1 where unplaced)."""
        placed = vm_host >= 0
        t = host_type[np.where(placed, vm_host, 0)]
        return np.where(placed, self.cfg_of[self.group, t], -1)

    def rates(self, k: int, util: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(event rates per vCPU per s (VMs, PRICED_COLUMNS), TLB misses per vCPU per s, net pps, disk IOPS) in
        interval k (or at utilisation `util` when k is None): trace columns where present, profiles elsewhere."""
        ev_all = event_rates(self.profile, util)
        io = io_rates(self.profile, util, self.vcpus)
        if k is not None:
            for col, arr in self.wl.extra.items():
                v = arr[k]
                given = ~np.isnan(v)
                if col in EVENT_COLUMNS:
                    j = EVENT_COLUMNS.index(col)
                    ev_all[given, j] = v[given]
            for j, col in enumerate(("net_rx_pps", "net_tx_pps", "disk_iops")):
                if col in self.wl.extra:
                    v = self.wl.extra[col][k]
                    given = ~np.isnan(v)
                    io[given, j] = v[given]
        return ev_all[:, self._ev_idx], ev_all[:, self._tlb_idx], io[:, 0] + io[:, 1], io[:, 2]

    def at(self, k: int | None, util: np.ndarray, vm_host: np.ndarray, host_type: np.ndarray,
           host_cores: np.ndarray, with_world_switches: bool = True) -> IntervalOverhead:
        """Overhead of every VM in interval k given the placement."""
        ev, tlb, net, disk = self.rates(k, util)
        cfg = self.configs_for(vm_host, host_type)
        ws = world_switches_per_s(util, self.vcpus, vm_host, host_cores, ev[:, self._halt], self.timeslice_s) \
            if with_world_switches else np.zeros(len(util))
        return interval_overhead(self.tables, cfg, self.vcpus, ev, tlb, net, disk, ws)

    def sizing_mips(self, k: int | None, util: np.ndarray, n_types: int) -> np.ndarray:
        """Overhead plus backend (MIPS) each VM would add on each host type at `util` (with interval k's trace
        columns, or profiles only when k is None), shape (VMs, types), for placement. World switches are left
        out: they depend on the placement being decided."""
        out = np.zeros((len(util), n_types))
        ev, tlb, net, disk = self.rates(k, util)
        for t in range(n_types):
            cfg = self.cfg_of[self.group, t]
            ov = interval_overhead(self.tables, cfg, self.vcpus, ev, tlb, net, disk, np.zeros(len(util)))
            out[:, t] = ov.overhead_mips + ov.backend_mips
        return out
