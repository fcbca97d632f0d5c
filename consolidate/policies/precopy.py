"""Pre-copy live migration in closed form (Clark et al. 2005; the model of SimGrid's VmLiveMigration).

Round 0 copies all memory M while the VM runs; round i copies what was dirtied during round i-1:
V_i = D * T_(i-1) with T_i = V_i / B, so V_i = M * rho^i with rho = D / B. It stops when the next round
would fit in the downtime target (V_i / B <= target): that round is copied with the VM paused; or when the
dirty set stops shrinking (rho >= 1: no convergence) or rounds reach the maximum, with the same stop-and-copy.
Downtime = last round / B (+ device state); total time = sum of T_i.

At the physical limits (`MigrationCosts`, docs/io-and-migration.md) a round's wire bytes are not its memory bytes:
zero pages go as markers (QEMU: an 8-byte page header and one byte), other pages with their header, dirty pages
after round 0 optionally compressed (XBZRLE), all over a TCP stream that carries `stream_efficiency` payload per
wire byte; a round also cannot go faster than the sender scans memory for zero pages; and the stop-and-copy adds
the hypervisor's switch-over (saving and loading vCPU and device state, stopping dirty logging, resuming), so
the downtime has a floor even for an idle guest.
"""
from __future__ import annotations

from dataclasses import dataclass

from consolidate.hardware import catalog as cat


@dataclass(frozen=True)
class MigrationCosts:
    """What one migration costs beyond its memory bytes (defaults: the ideal stream of the plain closed form)."""

    zero_fraction: float = 0.0  # share of memory in zero pages at round 0 (sent as markers)
    page_bytes: float = 4096.0
    page_header_bytes: float = 0.0  # per page sent (QEMU: 8)
    zero_marker_bytes: float | None = None  # per zero page (QEMU: 9); None: zero pages are sent whole
    dirty_compression_ratio: float = 1.0  # memory bytes per sent byte for dirty pages after round 0 (XBZRLE)
    stream_efficiency: float = 1.0  # payload bytes per wire byte (TCP/IP and Ethernet framing)
    scan_bytes_per_s: float = float("inf")  # memory the sender checks for zero pages per second
    switchover_s: float = 0.0  # fixed cost of the stop-and-copy: state save/load, dirty-log stop, resume

    def wire_bytes(self, memory_bytes: float, first_round: bool) -> float:
        """Bytes on the wire to send `memory_bytes` of guest memory in a round (round 0 carries the zero pages;
        later rounds carry dirtied pages, which are not zero)."""
        pages = memory_bytes / self.page_bytes
        if first_round:
            zero = pages * self.zero_fraction
            zero_b = zero * (self.page_bytes if self.zero_marker_bytes is None else self.zero_marker_bytes)
            payload = (pages - zero) * (self.page_bytes + self.page_header_bytes) + zero_b
        else:
            payload = pages * (self.page_bytes / self.dirty_compression_ratio + self.page_header_bytes)
        return payload / self.stream_efficiency

    def round_s(self, memory_bytes: float, first_round: bool, bandwidth_bytes_per_s: float) -> float:
        """Seconds of one round: the wire bytes at the bandwidth, or the zero-page scan if that is slower."""
        return max(self.wire_bytes(memory_bytes, first_round) / bandwidth_bytes_per_s,
                   memory_bytes / self.scan_bytes_per_s)


IDEAL = MigrationCosts()


def physical_costs(hypervisor: str | None, zero_fraction: float = 0.0, page_bytes: float = 4096.0,
                   dirty_compression_ratio: float = 1.0, switchover_s: float | None = None) -> MigrationCosts:
    """The catalog's stream and switch-over figures for a hypervisor (devices.yaml `migration`), with what the
    caller knows of the guest: the share of its memory in zero pages, the XBZRLE ratio of its dirty pages, and a
    switch-over that overrides the catalog's."""
    f = cat.migration_figures(hypervisor)
    return MigrationCosts(zero_fraction=zero_fraction, page_bytes=page_bytes, page_header_bytes=f.page_header_bytes,
                          zero_marker_bytes=f.zero_marker_bytes, dirty_compression_ratio=dirty_compression_ratio,
                          stream_efficiency=f.stream_efficiency, scan_bytes_per_s=f.scan_bytes_per_s,
                          switchover_s=f.switchover_s if switchover_s is None else switchover_s)


@dataclass(frozen=True)
class PrecopyPlan:
    """Round volumes in bytes (the last one is the stop-and-copy), times and totals."""

    volumes_bytes: tuple[float, ...]  # guest memory per round
    total_s: float
    downtime_s: float
    converged: bool
    wire_bytes: float = 0.0  # bytes on the wire, all rounds

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
                 state_bytes: float = 0.0, costs: MigrationCosts = IDEAL) -> PrecopyPlan:
    """Pre-copy rounds at a constant bandwidth (bytes/s). Dirty volume per round is capped by the writable working
    set (SimGrid's cap: 90% of memory by default). `state_bytes` (device and CPU state) goes with the last round;
    `costs` adds the physical limits (wire bytes, zero-page scan, switch-over); with the default it is the plain
    closed form V_i = M rho^i, T_i = V_i / B."""
    if bandwidth_bytes_per_s <= 0:
        raise ValueError("bandwidth must be positive")
    cap = memory_bytes if working_set_bytes is None else working_set_bytes
    volumes = [float(memory_bytes)]
    times = [costs.round_s(memory_bytes, True, bandwidth_bytes_per_s)]
    while True:
        nxt, stop = next_round(volumes[-1], times[-1], dirty_bytes_per_s, cap, downtime_target_s, len(volumes),
                               max_rounds)
        converged = nxt < volumes[-1]
        volumes.append(nxt)
        if stop:
            break
        times.append(costs.round_s(nxt, False, bandwidth_bytes_per_s))
    last_wire = costs.wire_bytes(volumes[-1], False) + state_bytes / costs.stream_efficiency
    downtime = max(last_wire / bandwidth_bytes_per_s, volumes[-1] / costs.scan_bytes_per_s) + costs.switchover_s
    volumes[-1] += state_bytes
    wire = sum(costs.wire_bytes(v, i == 0) for i, v in enumerate(volumes[:-1])) + last_wire
    return PrecopyPlan(volumes_bytes=tuple(volumes), total_s=sum(times) + downtime, downtime_s=downtime,
                       converged=converged, wire_bytes=wire)


def postcopy_plan(memory_bytes: float, bandwidth_bytes_per_s: float, state_bytes: float = 0.0,
                  costs: MigrationCosts = IDEAL) -> PrecopyPlan:
    """Post-copy: the VM stops, its vCPU and device state move and it switches over (the downtime), then resumes
    on the destination while every page is pushed (or pulled on a fault) once; no page is sent twice, so the total
    has no dirty-page term, but the VM runs degraded (remote faults) until the last page arrives: the degradation
    window is total - downtime."""
    if bandwidth_bytes_per_s <= 0:
        raise ValueError("bandwidth must be positive")
    state_wire = state_bytes / costs.stream_efficiency
    downtime = state_wire / bandwidth_bytes_per_s + costs.switchover_s
    pages = costs.round_s(memory_bytes, True, bandwidth_bytes_per_s)
    return PrecopyPlan(volumes_bytes=(float(memory_bytes) + state_bytes,), total_s=downtime + pages,
                       downtime_s=downtime, converged=True,
                       wire_bytes=costs.wire_bytes(memory_bytes, True) + state_wire)
