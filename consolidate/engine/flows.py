"""How concurrent transfers share the network: max-min fair rates (progressive filling) and the transfers in
flight as a SimPy-driven set whose rates are recomputed whenever one starts or ends."""
from __future__ import annotations

import numpy as np
import simpy

from consolidate.hardware.topology import Link, Network


def maxmin(paths: list[tuple[Link, ...]], capacity) -> list[float]:
    """Max-min fair rates (bits/s) of flows along `paths`, given capacity(link) in bits/s."""
    ids: dict[Link, int] = {}
    per_flow = [np.array([ids.setdefault(link, len(ids)) for link in p], dtype=np.int64) for p in paths]
    return maxmin_ids(per_flow, np.array([capacity(link) for link in ids], dtype=float)).tolist()


def maxmin_ids(flow_links: list[np.ndarray], capacities: np.ndarray) -> np.ndarray:
    """Max-min fair rates of flows given as arrays of link indices into `capacities` (bits/s).

    Progressive filling: find the links whose remaining capacity, shared equally among the flows not yet
    fixed that cross them, is smallest; fix those flows at that share; take it off their links; repeat.
    Vectorised over the flow-link incidence; flows with no links (same host) are unconstrained (inf).
    """
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


class Flows:
    """Concurrent transfers over the network, each at its max-min fair rate, recomputed whenever transfers
    start or end (once per instant, however many). State is kept as arrays over the flows in flight; a stale
    wake-up is ignored by generation number (SimPy timeouts cannot be cancelled)."""

    def __init__(self, env: simpy.Environment, net: Network, share: float):
        self.env, self.net, self.share = env, net, share
        self.links: list[np.ndarray] = []  # per flow in flight: its link indices
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
        self._advance()
        done = self.env.event()
        self.links.append(self.net.link_ids(src, dst))
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

    def _cancel(self, done: simpy.Event) -> None:
        keep = [d is not done for d in self.done]
        if all(keep):
            return  # it had finished in the same instant
        self._advance()
        self.links = [x for x, k in zip(self.links, keep) if k]
        self.done = [x for x, k in zip(self.done, keep) if k]
        self.left, self.rate = self.left[keep], self.rate[keep]
        self._soon()

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
            self.links = [x for x, k in zip(self.links, keep) if k]
            self.done = [x for x, k in zip(self.done, keep) if k]
            self.left, self.rate = self.left[keep], self.rate[keep]
        self._soon()
