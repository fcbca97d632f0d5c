"""How concurrent transfers share the network: max-min fair rates (progressive filling) and the transfers in
flight as a SimPy-driven set whose rates are recomputed whenever one starts or ends.

Two sharing models (`network.sharing`): `maxmin` (the default), every flow on a bottleneck gets the same rate;
`lv08`, SimGrid's validated flow model (Velho & Legrand 2009, SimGrid's network_cm02.cpp as LV08 configures it):
a flow's share of a bottleneck is inversely proportional to its penalty, the sum over its route of each link's
latency plus weight_S / its bandwidth (bytes/s), so flows over longer paths get less; a flow first waits
latency_factor x its route's latency; its rate is bounded by bandwidth_factor x its slowest link and by
TCP_gamma / (2 x its route's latency) (the TCP window over the round trip). SimGrid's optional cross-traffic (the
ACKs' reverse flows) is left out.
"""
from __future__ import annotations

import numpy as np
import simpy

from consolidate.hardware.topology import Link, Network


def maxmin(paths: list[tuple[Link, ...]], capacity) -> list[float]:
    """Max-min fair rates (bits/s) of flows along `paths`, given capacity(link) in bits/s."""
    ids: dict[Link, int] = {}
    per_flow = [np.array([ids.setdefault(link, len(ids)) for link in p], dtype=np.int64) for p in paths]
    return maxmin_ids(per_flow, np.array([capacity(link) for link in ids], dtype=float)).tolist()


# SimGrid's LV08 constants (src/surf/network_cm02.cpp, "LV08" network model; Velho & Legrand, SIMUTools 2009)
LV08_BANDWIDTH_FACTOR = 0.97
LV08_LATENCY_FACTOR = 13.01
LV08_WEIGHT_S_BYTES = 20537.0
LV08_TCP_GAMMA_BYTES = 4194304.0  # SimGrid's network/TCP-gamma default: the largest TCP window, bytes


def maxmin_ids(flow_links: list[np.ndarray], capacities: np.ndarray, penalty: np.ndarray | None = None,
               bound: np.ndarray | None = None) -> np.ndarray:
    """Max-min fair rates of flows given as arrays of link indices into `capacities` (bits/s).

    Progressive filling: find the links whose remaining capacity, shared equally among the flows not yet
    fixed that cross them, is smallest; fix those flows at that share; take it off their links; repeat.
    Vectorised over the flow-link incidence; flows with no links (same host) are unconstrained (inf).
    With `penalty` (per flow), shares are weighted: a flow gets level / penalty at a bottleneck's level (SimGrid's
    LMM); with `bound` (per flow, bits/s), no flow exceeds its bound (the capacity it leaves goes to the others).
    """
    if penalty is not None or bound is not None:
        return _weighted_maxmin(flow_links, capacities, penalty, bound)
    F = len(flow_links)
    rate = np.full(F, np.inf)
    if F == 0:
        return rate
    lengths = np.array([len(x) for x in flow_links])
    if lengths.sum() == 0:
        return rate
    rows_a = np.repeat(np.arange(F), lengths)
    cols_a = np.concatenate(flow_links)
    residual = capacities.astype(float).copy()
    fixed = lengths == 0
    while not fixed.all():
        live = ~fixed[rows_a]
        counts = np.bincount(cols_a[live], minlength=len(residual))
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(counts > 0, residual / counts, np.inf)
        s = share.min()
        if not np.isfinite(s):
            break
        # every link at the least share saturates at once: fix the flows crossing any of them
        tight = share <= s * (1 + 1e-12)
        newly = np.zeros(F, bool)
        newly[rows_a[live & tight[cols_a]]] = True
        rate[newly] = s
        fixed |= newly
        np.subtract.at(residual, cols_a[newly[rows_a]], s)
    return rate


def _weighted_maxmin(flow_links: list[np.ndarray], capacities: np.ndarray, penalty: np.ndarray | None,
                     bound: np.ndarray | None) -> np.ndarray:
    F = len(flow_links)
    rate = np.full(F, np.inf)
    if F == 0:
        return rate
    w = 1.0 / (np.ones(F) if penalty is None else np.asarray(penalty, float))
    cap = np.full(F, np.inf) if bound is None else np.asarray(bound, float)
    lengths = np.array([len(x) for x in flow_links])
    rows_a = np.repeat(np.arange(F), lengths)
    cols_a = np.concatenate(flow_links) if lengths.sum() else np.zeros(0, np.int64)
    residual = capacities.astype(float).copy()
    fixed = np.zeros(F, bool)
    rate[lengths == 0] = cap[lengths == 0]
    fixed[lengths == 0] = True
    while not fixed.all():
        live = ~fixed[rows_a]
        wsum = np.bincount(cols_a[live], weights=w[rows_a[live]], minlength=len(residual))
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(wsum > 0, residual / wsum, np.inf)
        s = level.min() if len(level) else np.inf
        # a flow whose own bound comes before the bottleneck's level is fixed at its bound first
        open_ = ~fixed
        by_bound = open_ & (cap <= s * w * (1 + 1e-12))
        if by_bound.any():
            newly = by_bound & (cap / w <= (cap / w)[by_bound].min() * (1 + 1e-12))
            rate[newly] = cap[newly]
        else:
            if not np.isfinite(s):
                break
            tight = level <= s * (1 + 1e-12)
            newly = np.zeros(F, bool)
            newly[rows_a[live & tight[cols_a]]] = True
            rate[newly] = s * w[newly]
        fixed |= newly
        on = newly[rows_a]
        np.subtract.at(residual, cols_a[on], rate[rows_a[on]])
    return rate


class Flows:
    """Concurrent transfers over the network, each at its max-min fair rate, recomputed whenever transfers
    start or end (once per instant, however many). State is kept as arrays over the flows in flight; a stale
    wake-up is ignored by generation number (SimPy timeouts cannot be cancelled)."""

    def __init__(self, env: simpy.Environment, net: Network, share: float, sharing: str = "maxmin"):
        self.env, self.net, self.share, self.sharing = env, net, share, sharing
        self.penalty = np.zeros(0)  # per flow in flight (lv08): route latency + weight_S / bandwidth, seconds
        self.bound = np.zeros(0)  # per flow in flight (lv08): bits/s
        self.links: list[np.ndarray] = []  # per flow in flight: its link indices
        self.ends: list[tuple[int, int]] = []  # per flow in flight: (source host, destination host)
        self.done: list[simpy.Event] = []
        self.left = np.zeros(0)  # bits still to send
        self.rate = np.zeros(0)  # bits/s
        self._gen = 0
        self._last = 0.0
        self._pending = False  # a recomputation is already scheduled for this instant

    def transfer(self, src: int, dst: int, nbytes: float):
        """Process: move nbytes from host src to host dst; returns the seconds it took."""
        start = self.env.now
        if nbytes <= 0:
            return 0.0
        ids = self.net.link_ids(src, dst)
        if self.sharing == "lv08":
            latency = float(self.net.latencies[ids].sum())
            if latency > 0:
                yield self.env.timeout(latency * LV08_LATENCY_FACTOR)  # SimGrid pays the latency first
            caps = self.net.capacities[ids] * self.share
            pen = latency + float((LV08_WEIGHT_S_BYTES * 8.0 / caps).sum()) if len(ids) else 1.0
            bnd = LV08_BANDWIDTH_FACTOR * float(caps.min()) if len(ids) else np.inf
            if latency > 0:
                bnd = min(bnd, LV08_TCP_GAMMA_BYTES * 8.0 / (2.0 * latency))
            self.penalty = np.append(self.penalty, pen)
            self.bound = np.append(self.bound, bnd)
        self._advance()
        done = self.env.event()
        self.links.append(ids)
        self.ends.append((src, dst))
        self.done.append(done)
        self.left = np.append(self.left, nbytes * 8.0)
        self.rate = np.append(self.rate, 0.0)
        self._soon()
        try:
            yield done
        except simpy.Interrupt:
            self._cancel(done)  # the migration was aborted: its flow stops taking bandwidth now
            raise
        return self.env.now - start

    def host_load(self, n_hosts: int) -> tuple[np.ndarray, np.ndarray]:
        """(bits/s sent, bits/s received) per host by the transfers in flight now."""
        sent, received = np.zeros(n_hosts), np.zeros(n_hosts)
        if self.ends:
            ends = np.array(self.ends)
            rate = np.where(np.isfinite(self.rate), self.rate, 0.0)
            np.add.at(sent, ends[:, 0], rate)
            np.add.at(received, ends[:, 1], rate)
        return sent, received

    def _cancel(self, done: simpy.Event) -> None:
        keep = [d is not done for d in self.done]
        if all(keep):
            return  # it had finished in the same instant
        self._advance()
        self._keep(np.array(keep))
        self._soon()

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the flows in flight where `keep` is False."""
        self.links = [x for x, k in zip(self.links, keep) if k]
        self.ends = [x for x, k in zip(self.ends, keep) if k]
        self.done = [x for x, k in zip(self.done, keep) if k]
        self.left, self.rate = self.left[keep], self.rate[keep]
        if self.sharing == "lv08":
            self.penalty, self.bound = self.penalty[keep], self.bound[keep]

    def _advance(self) -> None:
        dt = self.env.now - self._last
        if dt > 0 and len(self.left):
            self.left -= self.rate * dt
        self._last = self.env.now

    def _soon(self) -> None:
        """Recompute rates once for all the flows that start or end at this instant (a consolidation round
        starts hundreds of migrations at the same time)."""
        if not self._pending:
            self._pending = True
            self.env.process(self._recompute_now())

    def _recompute_now(self):
        yield self.env.timeout(0)
        self._pending = False
        self._advance()
        self._reschedule()

    def _reschedule(self) -> None:
        self._gen += 1
        if not self.links:
            return
        if self.sharing == "lv08":
            self.rate = maxmin_ids(self.links, self.net.capacities * self.share, self.penalty, self.bound)
        else:
            self.rate = maxmin_ids(self.links, self.net.capacities * self.share)
        wait = float(np.min(self.left / self.rate))
        self.env.process(self._wake(self._gen, max(wait, 0.0)))

    def _wake(self, gen: int, wait: float):
        yield self.env.timeout(wait)
        if gen != self._gen:
            return
        self._advance()
        finished = self.left <= 1e-6 * np.maximum(1.0, self.rate)
        if finished.any():
            keep = ~finished
            for i in np.flatnonzero(finished):
                self.done[i].succeed()
            self._keep(keep)
        self._soon()
