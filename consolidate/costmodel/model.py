"""Bind the cost tables to one scenario's VMs and hosts: which configuration each VM runs under on each host
type, its event and I/O rates in each interval (trace columns where given, its profile elsewhere)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from consolidate.costmodel.config import resolve
from consolidate.costmodel.interval import (NET_CLASS, EventTerms, IntervalOverhead, Ports, event_terms,
                                             interval_overhead, world_switches_per_s)
from consolidate.costmodel.tables import PRICED_COLUMNS, REASON_LABELS, REASONS, TLB_COLUMN, build_tables
from consolidate.hardware import catalog as cat
from consolidate.hardware.assignment import FAILOVER, IO_CLASSES, POOL_OF_PATH, PORT, VF, group_holding
from consolidate.scenario.model import HostType, Scenario
from consolidate.workload.build import Workload
from consolidate.workload.profiles import EVENT_COLUMNS, IO_COLUMNS, event_rates, io_rates, profile_table


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
        # a failover VM runs on a paravirtual NIC while its VF is unplugged: the same VM under a twin configuration
        self.cfg_pv_of = self.cfg_of.copy()
        for gi, g in enumerate(sc.vms):
            if group_holding(g).mobility == FAILOVER:
                io = g.virtualization.io.model_copy(update={"net": sc.migration.failover_net})
                twin = g.model_copy(update={"virtualization": g.virtualization.model_copy(update={"io": io})})
                for ti, ht in enumerate(host_types):
                    self.cfg_pv_of[gi, ti] = len(configs)
                    configs.append(resolve(twin, ht))
        self.tables = build_tables(configs)
        self.group = groups
        self.vcpus = wl.vms["vcpus"].to_numpy(np.float64)
        pt = profile_table()
        self.profile = np.array([pt.index(p) for p in wl.vms["profile"]], dtype=np.int64)
        ev_idx = [EVENT_COLUMNS.index(c) for c in PRICED_COLUMNS]
        self._ev_idx, self._tlb_idx = np.array(ev_idx), EVENT_COLUMNS.index(TLB_COLUMN)
        self._halt = PRICED_COLUMNS.index("halts_per_s")
        # Profile rates are linear in (1, u, u(1 - u)) and each event's cost is fixed per configuration, so the
        # event part of the overhead collapses to three numbers per (profile, configuration): an interval then
        # costs a few operations per VM instead of one per VM and event.
        t = self.tables
        # reasons that can occur in this scenario: only these get columns in the results
        any_exit = t.ev_exits.sum(axis=(0, 1)) + t.io_exits_any
        self.active_reasons = np.flatnonzero(any_exit > 0)
        coef = pt.coef[:, self._ev_idx, :]  # (P, E, 3)
        P, C = coef.shape[0], len(t.configs)
        walk = pt.coef[:, self._tlb_idx, :][:, None, :] * t.walk_extra[None, :, None]  # (P, C, 3)
        # per (profile x configuration) row: [cycles, refill, flushes, walk] x basis term
        self._k_scalar = np.stack([np.einsum("pej,ce->pcj", coef, t.ev_cycles),
                                   np.einsum("pej,ce->pcj", coef, t.ev_refill),
                                   np.einsum("pej,ce->pcj", coef, t.ev_flushes), walk], axis=3).reshape(P * C, 3, 4)
        self._k_exits = np.einsum("pej,cer->pcjr", coef, t.ev_exits[:, :, self.active_reasons]).reshape(
            P * C, 3, len(self.active_reasons))
        self._k_exits_j = [np.ascontiguousarray(self._k_exits[:, j, :]) for j in range(3)]
        self._k_reason = np.einsum("pej,cer->pcjr", coef, t.ev_reason_cycles).reshape(P * C, 3, -1) * \
            np.tile(t.cycles_to_mips, P)[:, None, None]
        self._halt_coef = pt.coef[:, EVENT_COLUMNS.index("halts_per_s"), :]  # (P, 3)
        self._event_cols = [c for c in self.wl.extra if c in EVENT_COLUMNS]
        # NIC ports per host type: port 0 carries the host's own traffic (paravirtual paths, bridged); with NICs
        # listed every port runs at its model's line rate (port 0 is the first NIC's first port), without them the
        # host has one port of network_bps; VFs spread over all ports
        nics = cat.nics()

        def port_rates(ht: HostType) -> np.ndarray:
            nic_ports = [nics[n.model].line_rate_bps for n in ht.nics for _ in range(nics[n.model].ports * n.count)]
            return np.array(nic_ports or [float(ht.network_bps)])

        self._type_ports = [port_rates(ht) for ht in host_types]
        self._cfg_pool = np.array([POOL_OF_PATH.get(p, -1) for p in t.io[NET_CLASS].path], dtype=np.int64)
        self._packet_bits = cat.packet_bytes() * 8.0
        self._port_layout = None
        # live migrations' streams leave through each host's port 0: the engine sets this to a callable giving
        # (bits/s sent, bits/s received) per host by the migrations in flight, which the VMs' packets then lack
        self.port_load: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def reasons(self) -> list[str]:
        """Exit reasons that occur in this scenario (column order of `exits_per_s` slices)."""
        return [REASONS[i] for i in self.active_reasons]

    def configs_for(self, vm_host: np.ndarray, host_type: np.ndarray,
                    paravirtual: np.ndarray | None = None) -> np.ndarray:
        """Configuration index of every VM on its current host (-1 where unplaced); VMs marked in
        `paravirtual` (failover VMs without their VF) under their paravirtual twin."""
        placed = vm_host >= 0
        t = host_type[np.where(placed, vm_host, 0)]
        cfg = self.cfg_of[self.group, t]
        if paravirtual is not None:
            cfg = np.where(paravirtual, self.cfg_pv_of[self.group, t], cfg)
        return np.where(placed, cfg, -1)

    def rates(self, k: int | None, util: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(event rates per vCPU per s (VMs, PRICED_COLUMNS), TLB misses per vCPU per s, I/O operations per s per
        class of IO_CLASSES) in interval k (or at utilisation `util` when k is None): trace columns where present,
        profiles elsewhere."""
        ev_all = event_rates(self.profile, util)
        if k is not None:
            for col, arr in self.wl.extra.items():
                v = arr[k]
                given = ~np.isnan(v)
                if col in EVENT_COLUMNS:
                    j = EVENT_COLUMNS.index(col)
                    ev_all[given, j] = v[given]
        return ev_all[:, self._ev_idx], ev_all[:, self._tlb_idx], self._io(k, util)

    def _terms(self, k: int, util: np.ndarray, cfg: np.ndarray) -> tuple[EventTerms, np.ndarray]:
        """Event terms of every VM and its HLT rate per vCPU: the collapsed profile tables for VMs whose trace
        gives no event column in interval k, explicit rates for the others."""
        t = self.tables
        V = len(util)
        busy_idle = util * (1.0 - util)
        basis = np.stack([np.ones(V), util, busy_idle], axis=1)
        hc = self._halt_coef
        p = self.profile
        halts = hc[p, 0] + hc[p, 1] * util + hc[p, 2] * busy_idle
        override = np.zeros(V, bool)
        for col in self._event_cols:
            override |= ~np.isnan(self.wl.extra[col][k])
        placed = cfg >= 0
        c = np.where(placed, cfg, 0)
        live = placed & ~t.native[c]
        fast = live & ~override
        vb = basis * (self.vcpus * fast)[:, None]  # zero rows for VMs not on the fast path
        combos = p * len(t.configs) + c
        # sum over the three basis terms of basis x per-combination row: contiguous row gathers, no 3-D temporaries
        scal = sum(vb[:, j, None] * np.take(self._k_scalar[:, j, :], combos, axis=0) for j in range(3))  # (V, 4)
        cycles, refill, flushes, walk = (scal[:, i].copy() for i in range(4))
        exits = sum(vb[:, j, None] * np.take(self._k_exits_j[j], combos, axis=0) for j in range(3))
        n = self._k_reason.shape[0]
        by_combo = np.stack([np.bincount(combos, weights=vb[:, j], minlength=n) for j in range(3)], axis=1)
        reason = np.einsum("kj,kjr->r", by_combo, self._k_reason)
        if override.any():
            ev, tlb, _ = self.rates(k, util)
            halts[override] = ev[override, self._halt]
            m = override & live
            sub = event_terms(t, cfg[m], self.vcpus[m], ev[m], tlb[m], self.active_reasons)
            cycles[m], refill[m], flushes[m], walk[m] = sub.cycles, sub.refill, sub.flushes, sub.walk
            exits[m] = sub.exits
            reason += sub.reason_cycles
        return EventTerms(cycles=cycles, refill=refill, flushes=flushes, exits=exits, walk=walk,
                          reason_cycles=reason), halts

    def _io(self, k: int | None, util: np.ndarray, with_rx_share: bool = False):
        """Operations per second of each I/O class (IO_CLASSES): the sum of its trace columns, each taken from the
        trace where it gives one in interval k and from the profile elsewhere (and, with_rx_share, the share of
        each VM's packets that are received)."""
        io = io_rates(self.profile, util, self.vcpus)
        if k is not None:
            for j, col in enumerate(IO_COLUMNS):
                if col in self.wl.extra:
                    v = self.wl.extra[col][k]
                    given = ~np.isnan(v)
                    io[given, j] = v[given]
        out = [sum(io[:, IO_COLUMNS.index(col)] for col in c.trace_columns) for c in IO_CLASSES]
        if not with_rx_share:
            return out
        rx, tx = io[:, IO_COLUMNS.index("net_rx_pps")], io[:, IO_COLUMNS.index("net_tx_pps")]
        return out, np.divide(rx, rx + tx, out=np.full(len(rx), 0.5), where=rx + tx > 0)

    def at(self, k: int, util: np.ndarray, vm_host: np.ndarray, host_type: np.ndarray,
           host_cores: np.ndarray, with_world_switches: bool = True,
           paravirtual: np.ndarray | None = None) -> IntervalOverhead:
        """Overhead of every VM in interval k given the placement (failover VMs in `paravirtual` on their
        paravirtual NIC)."""
        cfg = self.configs_for(vm_host, host_type, paravirtual)
        terms, halts = self._terms(k, util, cfg)
        io, rx_share = self._io(k, util, with_rx_share=True)
        ws = world_switches_per_s(util, self.vcpus, vm_host, host_cores, halts, self.timeslice_s) \
            if with_world_switches else np.zeros(len(util))
        ports = self.ports(cfg, vm_host, host_type, rx_share)
        return interval_overhead(self.tables, cfg, self.vcpus, terms, None, io, ws, self.active_reasons, ports, util)

    def ports(self, cfg: np.ndarray, vm_host: np.ndarray, host_type: np.ndarray, rx_share: np.ndarray) -> Ports:
        """The NIC port each VM's network traffic leaves through (see docs/io-and-migration.md): paravirtual
        paths through port 0, the host's link; a passthrough port whole (the host's last ports, one each); VFs in
        turn over the other ports, in VM order, as a driver spreading its VFs over the ports would."""
        if self._port_layout is None or len(self._port_layout[0]) != len(host_type):
            n = np.array([len(self._type_ports[t]) for t in host_type], dtype=np.int64)
            offset = np.concatenate([[0], np.cumsum(n)[:-1]])
            caps = np.concatenate([self._type_ports[t] for t in host_type]) if len(host_type) else np.zeros(0)
            self._port_layout = (offset, n, caps)
        offset, n_ports, caps = self._port_layout
        placed = cfg >= 0
        h = np.where(placed, vm_host, 0)
        pool = np.where(placed, self._cfg_pool[np.where(placed, cfg, 0)], -1)
        local = np.zeros(len(cfg), dtype=np.int64)

        def rank(mask: np.ndarray) -> np.ndarray:
            idx = np.flatnonzero(mask)
            order = idx[np.argsort(h[idx], kind="stable")]
            hs = h[order]
            start = np.r_[0, np.flatnonzero(hs[1:] != hs[:-1]) + 1]
            r = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
            out = np.zeros(len(cfg), dtype=np.int64)
            out[order] = r
            return out

        whole = pool == PORT
        if whole.any():
            local = np.where(whole, np.maximum(n_ports[h] - 1 - rank(whole), 0), local)
        vf = pool == VF
        if vf.any():
            taken = np.bincount(h[whole], minlength=len(n_ports))
            free = np.maximum(n_ports - taken, 1)
            local = np.where(vf, rank(vf) % free[h], local)
        taken = None
        if self.port_load is not None:
            sent, received = self.port_load()
            if np.any(sent) or np.any(received):
                taken = np.zeros((len(caps), 2))
                taken[offset, 0], taken[offset, 1] = received, sent
        return Ports(vm_port=np.where(placed, offset[h] + local, -1), capacity_bps=caps, rx_share=rx_share,
                     packet_bits=self._packet_bits, taken_bps=taken)

    def sizing_mips(self, k: int | None, util: np.ndarray, n_types: int) -> np.ndarray:
        """Overhead plus backend (MIPS) each VM would add on each host type at `util` (with interval k's trace
        columns, or profiles only when k is None), shape (VMs, types), for placement. World switches are left
        out: they depend on the placement being decided."""
        out = np.zeros((len(util), n_types))
        ev, tlb, io = self.rates(k, util)
        for t in range(n_types):
            cfg = self.cfg_of[self.group, t]
            ov = interval_overhead(self.tables, cfg, self.vcpus, ev, tlb, io, np.zeros(len(util)),
                                   self.active_reasons)
            out[:, t] = ov.overhead_mips + ov.backend_mips
        return out
