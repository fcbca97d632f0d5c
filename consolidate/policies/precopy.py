"""Pre-copy live migration in closed form (Clark et al. 2005; the model of SimGrid's VmLiveMigration).

Round 0 copies all memory M while the VM runs; round i copies what was dirtied during round i-1:
V_i = D * T_(i-1) with T_i = V_i / B, so V_i = M * rho^i with rho = D / B. It stops when the next round
would fit in the downtime target (V_i / B <= target): that round is copied with the VM paused; or when the
dirty set stops shrinking (rho >= 1: no convergence) or rounds reach the maximum, with the same stop-and-copy.
Downtime = last round / B (+ device state); total time = sum of T_i.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrecopyPlan:
    """Round volumes in bytes (the last one is the stop-and-copy), times and totals."""

    volumes_bytes: tuple[float, ...]
    total_s: float
    downtime_s: float
    converged: bool

    @property
    def rounds(self) -> int:
        return len(self.volumes_bytes)

    @property
    def bytes(self) -> float:
        return sum(self.volumes_bytes)


def next_round(volume: float, seconds: float, dirty_bytes_per_s: float, cap_bytes: float,
               downtime_target_s: float, rounds_done: int, max_rounds: int) -> tuple[float, bool]:
    """After a round that sent `volume` bytes in `seconds`: the next round's volume (what was dirtied meanwhile,
    capped by the working set) and whether it is the stop-and-copy (it fits the downtime target at the rate
    just seen, the dirty set stopped shrinking, or it would be round `max_rounds`). The one stopping rule of
    the closed form and of the engine's migrations over the network."""
    nxt = min(dirty_bytes_per_s * seconds, cap_bytes)
    rate = volume / seconds if seconds > 0 else float("inf")
    stop = nxt / rate <= downtime_target_s or nxt >= volume or rounds_done + 1 >= max_rounds
    return nxt, stop


def precopy_plan(memory_bytes: float, dirty_bytes_per_s: float, bandwidth_bytes_per_s: float,
                 downtime_target_s: float, max_rounds: int, working_set_bytes: float | None = None,
                 state_bytes: float = 0.0) -> PrecopyPlan:
    """Pre-copy rounds at a constant bandwidth. Dirty volume per round is capped by the writable working set
    (SimGrid's cap: 90% of memory by default). `state_bytes` (device and CPU state) goes with the last round."""
    if bandwidth_bytes_per_s <= 0:
        raise ValueError("bandwidth must be positive")
    cap = memory_bytes if working_set_bytes is None else working_set_bytes
    volumes = [float(memory_bytes)]
    while True:
        nxt, stop = next_round(volumes[-1], volumes[-1] / bandwidth_bytes_per_s, dirty_bytes_per_s, cap,
                               downtime_target_s, len(volumes), max_rounds)
        converged = nxt < volumes[-1]
        volumes.append(nxt)
        if stop:
            break
    last = volumes[-1] + state_bytes
    volumes[-1] = last
    total = sum(volumes) / bandwidth_bytes_per_s
    return PrecopyPlan(volumes_bytes=tuple(volumes), total_s=total, downtime_s=last / bandwidth_bytes_per_s,
                       converged=converged)
