"""VF failover for live migration of SR-IOV VMs (Zhai et al. 2008: hot-unplug the assigned NIC, let the guest's
bond fail over to a paravirtual NIC, migrate, hot-plug a VF at the destination).

State per failover VM: whether it holds a VF, and since when it has been on its paravirtual NIC. Every unplug
and re-plug is a service gap of `failover_gap_s`. The engine asks, per interval, what share of it each VM spent
paravirtual (its overhead is blended between its two configurations by that share) and how many seconds of
service gap fell in it (lost like a migration's downtime).
"""
from __future__ import annotations

import numpy as np


class Failover:
    """The VFs of failover VMs and their paravirtual windows, for one run."""

    def __init__(self, vm_failover: np.ndarray, vm_vf: np.ndarray, vm_host: np.ndarray,
                 host_vf_capacity: np.ndarray, gap_s: float):
        """vm_failover: (VMs,) moves by VF failover; vm_vf: (VMs,) holds an SR-IOV VF (failover or pinned)."""
        self.vm = vm_failover
        self.vm_vf = vm_vf
        self.capacity = host_vf_capacity
        self.gap_s = gap_s
        self.attached = vm_failover & (vm_host >= 0)
        self.since = np.full(len(vm_failover), np.nan)  # start of the open paravirtual window, NaN: holds a VF
        self.spans: list[tuple[int, float, float]] = []  # closed windows (vm, start_s, end_s)
        self.gaps: list[tuple[int, float]] = []  # (vm, time_s) of each unplug and re-plug
        self.paravirtual_s_total = 0.0
        self.gap_s_total = 0.0
        self.replugs = 0
        self.waiting_at_end = 0  # set by close(): VMs still paravirtual when the run ends

    def paravirtual_now(self) -> np.ndarray:
        """(VMs,) 1.0 for a VM on its paravirtual NIC now, else 0.0."""
        return (~np.isnan(self.since)).astype(np.float64)

    def vfs_held(self, vm_host: np.ndarray, vm_dest: np.ndarray) -> np.ndarray:
        """(hosts,) VFs in use: every other SR-IOV VM holds one where it is (and, while it moves, where it goes);
        a failover VM only while attached."""
        H = len(self.capacity)
        fixed = self.vm_vf & ~self.vm
        held = np.zeros(H)
        for where, mask in ((vm_host, fixed | self.attached), (vm_dest, fixed)):
            sel = mask & (where >= 0)
            held += np.bincount(where[sel], minlength=H)
        return held

    def unplug(self, v: int, now: float) -> float:
        """Hot-unplug VM v's VF at `now` (it starts a live migration); returns the service gap it costs, s."""
        if not self.vm[v] or not self.attached[v]:
            return 0.0
        self.attached[v] = False
        self.since[v] = now
        return self._gap(v, now)

    def plug(self, v: int, host: int, now: float, vm_host: np.ndarray, vm_dest: np.ndarray) -> float:
        """Attach a VF of `host` to VM v if one is free; returns the service gap (0 when none was free)."""
        if not self.vm[v] or self.attached[v] or self.vfs_held(vm_host, vm_dest)[host] >= self.capacity[host]:
            return 0.0
        self.attached[v] = True
        self.spans.append((v, float(self.since[v]), now))
        self.paravirtual_s_total += now - self.since[v]
        self.since[v] = np.nan
        self.replugs += 1
        return self._gap(v, now)

    def lose(self, vms: np.ndarray) -> None:
        """These VMs' host failed: a failover VM's VF is gone with it (it is down, not paravirtual)."""
        fo = vms[self.vm[vms]]
        self.attached[fo] = False

    def restart(self, v: int, host: int, now: float, vm_host: np.ndarray, vm_dest: np.ndarray) -> float:
        """A failover VM boots on `host` after a failure: on its paravirtual NIC, with a VF at once if one is free.
        Returns the service gap of the plug (0 when none was free)."""
        if not self.vm[v] or self.attached[v]:
            return 0.0
        self.since[v] = now
        return self.plug(v, host, now, vm_host, vm_dest)

    def replug_waiting(self, now: float, vm_host: np.ndarray, vm_dest: np.ndarray) -> None:
        """Give a VF back to every waiting VM (paravirtual, settled on a host) whose host has one free now."""
        waiting = np.flatnonzero(self.vm & ~self.attached & (vm_host >= 0) & (vm_dest < 0))
        for v in waiting:
            self.plug(int(v), int(vm_host[v]), now, vm_host, vm_dest)

    def _gap(self, v: int, now: float) -> float:
        self.gaps.append((v, now))
        self.gap_s_total += self.gap_s
        return self.gap_s

    def interval(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """(share of [t0, t1) each VM spent on its paravirtual NIC, seconds of service gap inside it);
        forgets what ended before t0 (intervals are accounted in order)."""
        V, dt = len(self.vm), t1 - t0
        self.spans = [s for s in self.spans if s[2] > t0]
        share = seconds_within(self.spans, self.since, t0, t1)
        gap = np.zeros(V)
        self.gaps = [g for g in self.gaps if g[1] + self.gap_s > t0]
        for v, t in self.gaps:
            gap[v] += max(0.0, min(t + self.gap_s, t1) - max(t, t0))
        return np.minimum(share / dt, 1.0), gap

    def close(self, now: float) -> None:
        """Count the windows still open at the end of the run."""
        open_ = ~np.isnan(self.since)
        self.paravirtual_s_total += float((now - self.since[open_]).sum())
        self.waiting_at_end = int(open_.sum())


def seconds_within(spans: list[tuple[int, float, float]], since: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Seconds of [t0, t1) each VM spent in a state, from its closed spans (vm, start_s, end_s) and, where
    `since` (per VM) is not NaN, the span still open since then."""
    out = np.zeros(len(since))
    for v, a, b in spans:
        out[v] += max(0.0, min(b, t1) - max(a, t0))
    open_ = np.flatnonzero(~np.isnan(since))
    out[open_] += np.clip(t1 - np.maximum(since[open_], t0), 0.0, t1 - t0)
    return out
